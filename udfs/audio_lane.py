"""The audio branch of the media pipeline (udfs/media_pipeline.py), on threads of its own:

    fetched bytes ─► decode pool: chunks of 10 s (bounded queue: a long file waits, never piles up)
    audio thread: micro-batches of chunks from every part being listened to ─► AudioAnalyzer
        ├─► partial MediaFindings after the first chunk and every few chunks, then the final one
        └─► speech thread (only while a rule reads text): transcripts ─► MediaText per chunk

The final findings of a part whose speech is being transcribed come from the speech thread, after
its last transcript, so they carry the whole transcript. Every failure becomes the part's
findings with status "error"; a video without sound gets "ok" with the flag `no_audio_track`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from schemas.errors import MediaError
from schemas.findings import text_part_of
from schemas.media import MediaFindings
from udfs.media_pipeline import failed, next_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioOptions:
    chunk_s: float = 10.0
    max_s: float = 3600.0  # longer audio is analysed up to here and flagged audio_cut_short
    batch_size: int = 8  # chunks (of different parts) per batched VAD step
    batch_wait_ms: int = 5
    decode_workers: int = 2
    progress_chunks: int = 3  # a long part reports after its first chunk, then every N chunks
    queue_chunks: int = 8  # chunks waiting for analysis; decoders block beyond this


@dataclass
class _Part:
    request: Any
    base: MediaFindings
    listening: Any = None
    end: str | None = None  # why decoding stopped
    error: str | None = None
    texts: int = 0  # transcripts handed to the text analysis
    decode_ms: float = 0.0
    analyse_ms: float = 0.0


@dataclass
class _Chunk:
    part: _Part
    samples: Any = None  # None: the part's end marker


class AudioLane:
    def __init__(self, analyzer: Any, options: AudioOptions, emit: Callable[[Any, Any], None],
                 finish: Callable[[Any, Any], None], clock_ms: Callable[[], int],
                 text: Callable[..., Any]) -> None:
        self.analyzer = analyzer
        self.options = options
        self._emit, self._finish, self._clock_ms, self._text = emit, finish, clock_ms, text
        self.speech_wanted = False  # set by the owner: does an active rule read text?
        self.phrases: tuple[str, ...] = ()  # tracked phrases to spot in speech
        self._chunks: queue.Queue[_Chunk] = queue.Queue(options.queue_chunks)
        self._speech: queue.Queue[tuple[_Part, Any]] = queue.Queue()
        self._decoders = ThreadPoolExecutor(options.decode_workers, thread_name_prefix="audio-decode")
        self._stopping = threading.Event()
        for target, name in ((self._listen_loop, "audio"), (self._speech_loop, "speech")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def submit(self, request: Any, base: MediaFindings, data: bytes, mime: str | None,
               track_of_video: bool = False) -> None:
        self._decoders.submit(self._decode, _Part(request, base), data, mime, track_of_video)

    def close(self) -> None:
        self._stopping.set()
        self._decoders.shutdown(wait=False, cancel_futures=True)

    # --- decode pool ------------------------------------------------------------------------

    def _decode(self, part: _Part, data: bytes, mime: str | None, track_of_video: bool) -> None:
        from udfs.audio import open_audio

        try:
            stream = open_audio(data, mime, self.options.chunk_s, self.options.max_s)
            part.listening = self.analyzer.start(stream.info, self.speech_wanted)
            started = time.perf_counter()
            for samples in stream:
                part.decode_ms += (time.perf_counter() - started) * 1000
                if self._stopping.is_set():
                    stream.close()
                    return
                self._chunks.put(_Chunk(part, samples))
                started = time.perf_counter()
            part.end, part.error = stream.end, stream.error
        except MediaError as exc:
            if track_of_video and exc.code == "no_audio":
                self._finish(part.request, replace(part.base, status="ok", flags=("no_audio_track",),
                                                   analysed_at=self._clock_ms()))
            else:
                self._finish(part.request, failed(part.base, "decode", exc))
            return
        except Exception as exc:  # a bug must cost this part, not leave it in flight for ever
            log.exception("decoding audio of %s failed unexpectedly", part.base.uri)
            self._finish(part.request, failed(part.base, "decode", MediaError("internal", repr(exc))))
            return
        self._chunks.put(_Chunk(part))

    # --- audio thread -----------------------------------------------------------------------

    def _listen_loop(self) -> None:
        while not self._stopping.is_set():
            batch = next_batch(self._chunks, self.options.batch_size, self.options.batch_wait_ms)
            try:
                for round_ in _rounds(batch):
                    self._listen_round(round_)
            except Exception as exc:  # a bug or a model failure costs this batch's parts only
                log.exception("audio analysis failed on a batch of %d chunks", len(batch))
                for chunk in batch:
                    self._finish(chunk.part.request, failed(chunk.part.base, "analyse", MediaError("internal", repr(exc))))

    def _listen_round(self, batch: list[_Chunk]) -> None:
        live = [c for c in batch if c.samples is not None]
        started = time.perf_counter()
        spans = self.analyzer.analyse([c.part.listening for c in live], [c.samples for c in live]) if live else []
        for chunk in live:  # each chunk's share of the batch
            chunk.part.analyse_ms += (time.perf_counter() - started) * 1000 / len(live)
        for chunk, found in zip(live, spans):
            part = chunk.part
            if found:
                self._speech.put((part, found))
            chunks = part.listening.chunks
            if chunks == 1 or chunks % self.options.progress_chunks == 0:
                self._emit(part.request.tag, self._findings(part, "partial"))
        for chunk in batch:
            if chunk.samples is None:
                held = self.analyzer.finish(chunk.part.listening)
                if chunk.part.listening.transcribe:
                    if held:
                        self._speech.put((chunk.part, held))
                    self._speech.put((chunk.part, None))
                else:
                    self._finish(chunk.part.request, self._final(chunk.part))

    # --- speech thread ----------------------------------------------------------------------

    def _speech_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                part, spans = self._speech.get(timeout=0.1)
            except queue.Empty:
                continue
            if spans is None:
                self._finish(part.request, self._final(part))
                continue
            try:
                text = self.analyzer.transcribe(part.listening, spans, self.phrases)
            except Exception:  # speech-to-text is an extra: a failure costs this chunk's words
                log.exception("speech-to-text failed on %s", part.base.uri)
                continue
            if text.strip():
                # the first text is the part's "<part>.text"; later ones are named by when
                where = text_part_of(part.base.part_id) + (f"@{spans[0].start_s:.0f}s" if part.texts else "")
                part.texts += 1
                self._emit(part.request.tag, self._text(part.request, text, where))

    # --- findings ---------------------------------------------------------------------------

    def _findings(self, part: _Part, status: str, final: bool = False) -> MediaFindings:
        summary = self.analyzer.summary(part.listening, final)
        timings = {**part.base.timings_ms, "decode": round(part.decode_ms, 1), "analyse": round(part.analyse_ms, 1)}
        return replace(part.base, status=status, audio=summary, models=dict(self.analyzer.models),
                       timings_ms=timings, analysed_at=self._clock_ms())

    def _final(self, part: _Part) -> MediaFindings:
        if part.listening.chunks == 0 and part.end == "corrupt":
            return failed(part.base, "decode", MediaError("corrupt", part.error or "no decodable audio"))
        findings = self._findings(part, "ok", final=True)
        if part.end in ("limit", "corrupt"):
            findings = replace(findings, flags=findings.flags + ("audio_cut_short",))
        return findings


def _rounds(batch: list[_Chunk]) -> list[list[_Chunk]]:
    """The batch split so that each round holds at most one chunk (or end) per part, in order: a
    part's chunks carry state from one to the next, so they can never be analysed side by side."""
    rounds: list[list[_Chunk]] = []
    last_round: dict[int, int] = {}
    for chunk in batch:
        at = last_round.get(id(chunk.part), -1) + 1
        if at == len(rounds):
            rounds.append([])
        rounds[at].append(chunk)
        last_round[id(chunk.part)] = at
    return rounds


