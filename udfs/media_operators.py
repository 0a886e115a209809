"""Thin Flink adapters of the visual analysis (the core is udfs/media_pipeline.py + udfs/visual.py).

    DecodeRefNotices  raw bytes (refs.v1) -> RefNotice | dead letters
    AnalyzeMedia      Ingested with image/video parts (by shard), + rules and ref notices (broadcast)
                      -> MediaFindings (partial and final), Ingested (text read in images), RuleAck
    RouteMedia        Ingested -> main (to the text analysis); MediaFindings, RuleAck -> JSON sides

Fetching, decoding and the models run on the pipeline's own threads: the operator hands parts
over and collects what is ready on a short processing-time timer, so a slow server or a long
video never holds up the job. Parts wait in keyed state until their final findings are out: after
a restore, the first timer of a shard resubmits whatever its state still holds.
References are loaded from Cassandra when the operator opens and kept current by the notices; the
index lives in memory only (an index of 100,000 images must not ride in broadcast state).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pyflink.common import Types
from pyflink.datastream import (
    KeyedBroadcastProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import MapStateDescriptor

from schemas.codec import encode
from schemas.deadletter import dead_letter
from schemas.errors import RecordError
from schemas.findings import audio_part_of, text_part_of
from schemas.flink_types import record_type
from schemas.media import MediaFindings
from schemas.pipeline import Ingested, PartClosed
from schemas.refs import RefNotice, decode_notice
from schemas.rule import RuleAck
from trackius.settings import Settings
from udfs.operators import (
    DEAD_LETTERS,
    FINDINGS,
    MEDIA_KINDS,
    RULE_ACKS,
    RULE_HOLDERS,
    now_ms,
    share_the_interpreter_fairly,
    subtask_of,
)
from udfs.rules import RuleBook
from udfs.threads import on_python_thread

log = logging.getLogger(__name__)
MEDIA_RULES_STATE = MapStateDescriptor("media-rules", Types.STRING(), record_type())
TO_FUSION = OutputTag("to-fusion", record_type())  # MediaFindings and PartClosed


class DecodeRefNotices(ProcessFunction):
    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
        try:
            yield decode_notice(bytes(value))
        except RecordError as exc:
            yield DEAD_LETTERS, dead_letter(bytes(value), "refs", str(exc), self.source_topic, now_ms())


class AnalyzeMedia(KeyedBroadcastProcessFunction):
    operator = "analyze-media"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        share_the_interpreter_fairly()
        self.subtask, self.subtasks = subtask_of(runtime_context)
        self.pipeline = on_python_thread(build_pipeline, self.settings)
        self.followers = on_python_thread(follow_references, self.settings, self.pipeline)
        self.pending = runtime_context.get_map_state(MapStateDescriptor("media-pending", Types.STRING(), record_type()))
        self.book: RuleBook | None = None
        self.armed: set[Any] = set()  # shards with a poll timer registered
        self.restored: set[Any] = set()  # shards whose state was checked against the pipeline
        self.submitted: set[str] = set()  # parts handed to this pipeline since open
        self.texts_sent: dict[str, list[str]] = {}  # part key -> text parts sent to the text analysis
        metrics = runtime_context.get_metrics_group()
        self.parts_in = metrics.counter("media_parts_in")
        self.parts_failed = metrics.counter("media_parts_failed")

    def close(self) -> None:
        pipeline = getattr(self, "pipeline", None)
        if pipeline is not None:
            pipeline.close()

    def process_element(self, value: Ingested, ctx: Any) -> Iterator[Any]:
        self._ocr_switch(ctx)
        for part in analysed_parts(value.event.parts, self.settings.sound_of_video):
            self.pending.put(_key(value.event.content_key, part.part_id), replace(value, part_id=part.part_id))
            self._submit(ctx.get_current_key(), value, part)
            self.parts_in.inc()
        self._arm(ctx)
        return iter(())

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        shard = ctx.get_current_key()
        self.armed.discard(shard)
        if shard not in self.restored:
            self._resubmit_restored(shard)
        for result in self.pipeline.take(shard):
            yield from self._emit(result)
        if not self.pending.is_empty():
            self._arm(ctx)

    def process_broadcast_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        if isinstance(value, RefNotice):
            self._apply_notice(value)
            return
        state = ctx.get_broadcast_state(MEDIA_RULES_STATE)
        current = state.get(value.rule_id)
        if current is None or current.version <= value.version:
            state.put(value.rule_id, value)
            if self.book is not None and self.book.apply(value):
                self.pipeline.wants_text(reads_text(self.book), self.book.index.spoken)
        yield RuleAck(value.rule_id, value.version, self.operator, self.subtask, self.subtasks, RULE_HOLDERS)

    def _emit(self, result: Any) -> Iterator[Any]:
        if isinstance(result, MediaFindings):
            if result.status == "error":
                self.parts_failed.inc()
            yield result
            if result.status != "partial" and "ocr_pending" not in result.flags:
                yield self._done(result.content_key, result.part_id)
            return
        key = _key(result.content_key, result.part_id)
        waiting = self.pending.get(key)
        if waiting is not None and result.text.strip():
            text_part = result.text_part or text_part_of(result.part_id)
            self.texts_sent.setdefault(key, []).append(text_part)
            yield Ingested(replace(waiting.event, text=result.text, parts=()), now_ms(), text_part)
        if result.final:
            yield self._done(result.content_key, result.part_id)

    def _done(self, content_key: str, part_id: str) -> PartClosed:
        """The part leaves state; fusion learns which text parts (read or heard) are to come."""
        key = _key(content_key, part_id)
        self.pending.remove(key)
        self.submitted.discard(key)
        return PartClosed(content_key, part_id, tuple(self.texts_sent.pop(key, ())))

    def _submit(self, shard: Any, value: Ingested, part: Any) -> None:
        from udfs.media_pipeline import PartRequest

        self.submitted.add(_key(value.event.content_key, part.part_id))
        self.pipeline.submit(PartRequest(shard, value.event.content_key, part, value.event.collected_at))

    def _resubmit_restored(self, shard: Any) -> None:
        """After a restore the pipeline is empty but state still lists the unfinished parts: those
        this pipeline never saw are submitted again."""
        self.restored.add(shard)
        for key, waiting in list(self.pending.items()):
            event = waiting.event
            if key not in self.submitted:
                parts = analysed_parts(event.parts, self.settings.sound_of_video)
                self._submit(shard, waiting, next(p for p in parts if p.part_id == waiting.part_id))

    def _arm(self, ctx: Any) -> None:
        shard = ctx.get_current_key()
        if shard not in self.armed:
            self.armed.add(shard)
            timers = ctx.timer_service()
            timers.register_processing_time_timer(timers.current_processing_time() + self.settings.media_poll_ms)

    def _ocr_switch(self, ctx: Any) -> None:
        if self.book is None:  # after open or a restore: broadcast state is the truth
            self.book = RuleBook.of(rule for _, rule in ctx.get_broadcast_state(MEDIA_RULES_STATE).items())
            self.pipeline.wants_text(reads_text(self.book), self.book.index.spoken)

    def _apply_notice(self, notice: RefNotice) -> None:
        for follower, refs in self.followers:
            change = on_python_thread(follower.apply, notice)
            if change is None:
                continue
            if change.op == "add":
                refs.add(change.ref_id, change.name, change.signature)
            else:
                refs.remove(change.ref_id)
            log.info("%s reference %s %s; %d indexed", follower.kind, change.ref_id, change.op, len(refs))


def reads_text(book: RuleBook) -> bool:
    """Whether an active rule looks for a term, phrase or tracked name: only then is reading the
    text in images (slow) worth it."""
    return book.index.scanner.size > 0


def build_pipeline(settings: Settings) -> Any:
    from udfs.media import Fetcher
    from udfs.media_pipeline import MediaPipeline, PipelineOptions
    from udfs.ocr import create_ocr
    from udfs.visual import VisualAnalyzer

    fetcher = Fetcher(timeout_s=settings.media_fetch_timeout_ms / 1000, max_bytes=settings.media_max_bytes,
                      workers=settings.media_fetch_workers, cache_items=settings.media_cache_items,
                      cache_bytes=settings.media_cache_bytes, file_roots=settings.file_roots)
    from udfs.known_images import ImageIndex

    index = ImageIndex(settings.image_match_max_hash_bits, settings.image_match_min_cosine)
    analyzer = VisualAnalyzer.create(settings.model_dir, settings.vision_manifest, index)
    options = PipelineOptions(max_side=settings.image_max_side, max_pixels=settings.image_max_pixels,
                              batch_size=settings.media_batch_size, batch_wait_ms=settings.media_batch_max_wait_ms,
                              video_every_s=settings.video_every_ms / 1000, video_max_frames=settings.video_max_frames)
    return MediaPipeline(fetcher, analyzer, create_ocr(settings.ocr_model_dir), options,
                         audio=build_listener(settings), audio_options=audio_options(settings))


def build_listener(settings: Settings) -> Any:
    from udfs.listening import AudioAnalyzer

    return AudioAnalyzer.create(settings.model_dir, settings.audio_manifest, settings.speech_engine,
                                settings.speech_model_dir, settings.audio_match_phases)


def audio_options(settings: Settings) -> Any:
    from udfs.audio_lane import AudioOptions

    return AudioOptions(chunk_s=settings.audio_chunk_ms / 1000, max_s=settings.audio_max_seconds,
                        batch_size=settings.media_batch_size, batch_wait_ms=settings.media_batch_max_wait_ms)


def follow_references(settings: Settings, pipeline: Any) -> list[tuple[Any, Any]]:
    """(follower, index) per kind of reference, each index loaded from Cassandra; none when the
    setting turns references off."""
    if settings.refs_store == "none":
        log.info("references disabled (TRACKIUS_REFS_STORE=none)")
        return []
    from connectors.admin import cassandra_session
    from connectors.refs import RefFollower, RefStore
    from udfs.known_images import SIGNATURE_VERSION

    store = RefStore(cassandra_session(settings), settings.cassandra_keyspace)
    visual = pipeline.analyzer
    kinds = [(RefFollower(store, "image", visual.signer(settings.image_max_side, settings.image_max_pixels),
                          SIGNATURE_VERSION), ImageRefs(visual.index))]
    if pipeline.audio is not None:
        from udfs.clip_refs import CLIP_SIGNATURE_VERSION, clip_signer

        listener = pipeline.audio.analyzer
        kinds.append((RefFollower(store, "audio", clip_signer(settings.audio_max_seconds), CLIP_SIGNATURE_VERSION), listener))
    for follower, refs in kinds:
        for entry in follower.load_all():
            refs.add(entry.ref_id, entry.name, entry.signature)
        log.info("%d %s references indexed", len(refs), follower.kind)
    return kinds


class ImageRefs:
    """The image index as the followers see it: stored signatures in, by id."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def add(self, ref_id: str, name: str, signature: bytes) -> None:
        from udfs.known_images import signature_from_bytes

        self.index.add(ref_id, name, signature_from_bytes(signature))

    def remove(self, ref_id: str) -> None:
        self.index.remove(ref_id)


class RouteMedia(ProcessFunction):
    """Ingested (text read or heard in media) -> main, on to the text analysis; MediaFindings ->
    JSON and, with PartClosed, to fusion; RuleAck -> JSON. A process function of its own because
    records emitted from on_timer lose their side-output tag in PyFlink 2.2's thread mode."""

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Iterator[Any]:
        if isinstance(value, Ingested):
            yield value
        elif isinstance(value, MediaFindings):
            yield FINDINGS, encode(value)
            yield TO_FUSION, value
        elif isinstance(value, PartClosed):
            yield TO_FUSION, value
        elif isinstance(value, RuleAck):
            yield RULE_ACKS, encode(value)


def analysed_parts(parts: Any, audio_of_video: bool) -> list[Any]:
    """The media parts to analyse: the event's, plus the sound of each video as an audio part."""
    from schemas.content import MediaPart

    found = [part for part in parts if part.kind in MEDIA_KINDS]
    if audio_of_video:
        found += [MediaPart(audio_part_of(part.part_id), "audio", part.uri, part.mime, part.size)
                  for part in parts if part.kind == "video"]
    return found


def _key(content_key: str, part_id: str) -> str:
    return f"{content_key}\x1f{part_id}"

