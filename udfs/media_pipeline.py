"""Media parts in, MediaFindings out, in background threads, so the caller never waits on a
slow server or a long video: the Flink operator submits parts and collects what is ready on a
short timer; the CLI submits and waits.

    submit ─► fetch pool (bounded, with timeouts, size cap, cache)  ─► decode image ─┐
                                   └► video pool: sample frames (progressively) ─────┤ bounded queue
    analysis thread: micro-batches bounded by size and time ─► VisualAnalyzer ◄──────┘
        ├─► MediaFindings (images: final; videos: partial every few frames, then final)
        └─► OCR thread (only when a rule could use the text) ─► MediaText for the text analysis
    audio parts, and the sound of video parts: udfs/audio_lane.py, on its own threads
        ─► MediaFindings (partial, then final) and transcripts as MediaText

Every failure (fetch, decode, a model) becomes the part's findings with status "error", never
a crash: the other parts and the content's text keep their analysis. Results are collected per
`tag` (the operator's key), because a keyed Flink operator can only emit and clear state for the
key of the timer that fires.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.content import MediaPart
from schemas.errors import MediaError
from schemas.media import Failure, KnownImage, MediaFindings, SceneLabel, VideoSummary
from udfs.imaging import decode_image
from udfs.video import ObjectSummary, sample_frames_from_bytes
from udfs.visual import ImageAnalysis, VisualAnalyzer

log = logging.getLogger(__name__)
VIDEO_SUFFIX = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm",
                "video/x-matroska": ".mkv", "video/x-msvideo": ".avi"}


@dataclass(frozen=True)
class PartRequest:
    tag: Any  # who collects the results (the operator's key)
    content_key: str
    part: MediaPart
    collected_at: int = 0


@dataclass(frozen=True)
class MediaText:
    """Text read in an image part or heard in an audio part, for the text analysis."""

    tag: Any
    content_key: str
    part_id: str  # the media part's
    text: str
    text_part: str = ""  # the part_id its text findings get (default: text_part_of(part_id))
    final: bool = True  # the part's last result (OCR); transcripts come before the final findings


@dataclass(frozen=True)
class PipelineOptions:
    max_side: int = 1280  # decoded images are downscaled to this longest side
    max_pixels: int = 40_000_000  # decompression-bomb limit (after early JPEG downscaling)
    batch_size: int = 8
    batch_wait_ms: int = 5
    video_every_s: float = 1.0
    video_max_frames: int = 300
    video_max_side: int = 640
    video_workers: int = 2
    decode_workers: int = 2
    progress_frames: int = 10  # a long video reports after its first batch, then every N frames
    queue_frames: int = 64  # frames waiting for analysis; a video sampler blocks beyond this


@dataclass
class _Job:
    request: PartRequest
    rgb: Any = None
    scale: float = 1.0
    base: MediaFindings | None = None  # images: the findings so far (fetch, decode)
    t_ms: int | None = None  # video frames only
    video: _Video | None = None
    end: bool = False  # a video's last job: every frame before it has been queued


@dataclass
class _Video:
    base: MediaFindings
    objects: ObjectSummary = field(default_factory=ObjectSummary)
    labels: dict[str, float] = field(default_factory=dict)
    matches: dict[str, KnownImage] = field(default_factory=dict)
    faces_peak: int = 0
    analysed_ms: int = 0
    reported: int = 0  # frames analysed at the last report
    cut_short: bool = False


class MediaPipeline:
    def __init__(self, fetcher: Any, analyzer: VisualAnalyzer, ocr: Any = None,
                 options: PipelineOptions | None = None, clock_ms: Callable[[], int] | None = None,
                 audio: Any = None, audio_options: Any = None) -> None:
        self.fetcher = fetcher
        self.analyzer = analyzer
        self.ocr = ocr
        self.options = options or PipelineOptions()
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.ocr_wanted = False  # set by the owner: is there an active rule that reads text?
        self._jobs: queue.Queue[_Job] = queue.Queue(self.options.queue_frames)
        self._ocr_jobs: queue.Queue[tuple[PartRequest, Any]] = queue.Queue()
        self._results: dict[Any, list[Any]] = defaultdict(list)
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._videos = ThreadPoolExecutor(self.options.video_workers, thread_name_prefix="video")
        # Decoding leaves the fetch workers free for I/O, and a cache hit (whose callback would
        # run on the submitting thread, the operator's) is decoded here too.
        self._decoder = ThreadPoolExecutor(self.options.decode_workers, thread_name_prefix="decode")
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._analyse_loop, name="visual", daemon=True),
                         threading.Thread(target=self._ocr_loop, name="ocr", daemon=True)]
        for thread in self._threads:
            thread.start()
        self.audio = None
        if audio is not None:
            from udfs.audio_lane import AudioLane, AudioOptions

            self.audio = AudioLane(audio, audio_options or AudioOptions(), self._emit, self._finish,
                                   self.clock_ms, self._transcript)

    def wants_text(self, wanted: bool, phrases: tuple[str, ...] = ()) -> None:
        """Whether an active rule reads text (so images are OCR'd and speech transcribed), and
        the phrases rules track (spotted in speech)."""
        self.ocr_wanted = wanted
        if self.audio is not None:
            self.audio.speech_wanted, self.audio.phrases = wanted, phrases

    # --- the owner's side -----------------------------------------------------------------

    def submit(self, request: PartRequest) -> None:
        with self._lock:
            self._in_flight.add((request.content_key, request.part.part_id))
        future: Future = self.fetcher.submit(request.part.uri, request.part.kind)
        future.add_done_callback(lambda done: self._decoder.submit(self._fetched, request, done))

    def in_flight(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._in_flight)

    def take(self, tag: Any) -> list[MediaFindings | MediaText]:
        """Everything ready for `tag` since the last take; a part leaves in_flight() once its
        final findings (and its OCR text, if any) are in a take."""
        with self._lock:
            ready = self._results.pop(tag, [])
        return ready

    def run(self, requests: list[PartRequest], timeout_s: float = 120.0) -> Iterator[MediaFindings | MediaText]:
        """Submit and yield results until every part is done (the CLI's way)."""
        for request in requests:
            self.submit(request)
        deadline = time.monotonic() + timeout_s
        tags = {request.tag for request in requests}
        while time.monotonic() < deadline:
            for tag in tags:
                yield from self.take(tag)
            if not self.in_flight():
                for tag in tags:
                    yield from self.take(tag)
                return
            time.sleep(0.005)
        raise TimeoutError(f"media analysis did not finish within {timeout_s} s")

    def close(self) -> None:
        self._stopping.set()
        self._videos.shutdown(wait=False, cancel_futures=True)
        self._decoder.shutdown(wait=False, cancel_futures=True)
        if self.audio is not None:
            self.audio.close()
        self.fetcher.close()

    # --- decode (decode pool and video pool threads) ------------------------------------------

    def _fetched(self, request: PartRequest, done: Future) -> None:
        try:
            self._after_fetch(request, done)
        except Exception as exc:  # a bug must cost this part, not leave it in flight for ever
            log.exception("decoding %s failed unexpectedly", request.part.uri)
            self._finish(request, failed(_base(request), "decode", MediaError("internal", repr(exc))))

    def _after_fetch(self, request: PartRequest, done: Future) -> None:
        base = _base(request)
        try:
            media = done.result()
        except MediaError as exc:
            self._finish(request, failed(base, "fetch", exc))
            return
        except Exception as exc:  # a bug must cost this part, not the thread that reports it
            log.exception("fetching %s failed unexpectedly", request.part.uri)
            self._finish(request, failed(base, "fetch", MediaError("internal", repr(exc))))
            return
        base = replace(base, mime=media.mime, sha256=media.sha256, timings_ms={"fetch": round(media.fetch_ms, 1)})
        if request.part.kind == "audio":
            self._listen(request, base, media)
        elif request.part.kind == "video":
            self._videos.submit(self._sample, request, base, media)
        else:
            self._decode(request, base, media)

    def _listen(self, request: PartRequest, base: MediaFindings, media: Any) -> None:
        if self.audio is None:
            self._finish(request, failed(base, "analyse", MediaError("unsupported", "audio analysis is off")))
        else:
            self.audio.submit(request, base, media.data, media.mime, track_of_video=media.mime.startswith("video/"))

    def _transcript(self, request: PartRequest, text: str, text_part: str) -> MediaText:
        return MediaText(request.tag, request.content_key, request.part.part_id, text, text_part, final=False)

    def _decode(self, request: PartRequest, base: MediaFindings, media: Any) -> None:
        started = time.perf_counter()
        try:
            image = decode_image(media.data, self.options.max_side, self.options.max_pixels)
        except MediaError as exc:
            self._finish(request, failed(base, "decode", exc))
            return
        timings = {**base.timings_ms, "decode": round((time.perf_counter() - started) * 1000, 1)}
        flags = ("downscaled",) if image.scale < 1 else ()
        base = replace(base, width=image.width, height=image.height, timings_ms=timings, flags=flags)
        self._jobs.put(_Job(request, image.rgb, image.scale, base=base))

    def _sample(self, request: PartRequest, base: MediaFindings, media: Any) -> None:
        options = self.options
        video = _Video(base)
        try:
            stream = sample_frames_from_bytes(media.data, suffix=VIDEO_SUFFIX.get(media.mime, ".mp4"),
                                              every_s=options.video_every_s, max_frames=options.video_max_frames,
                                              max_side=options.video_max_side)
            for frame in stream:
                if self._stopping.is_set():
                    stream.close()
                    return
                if video.base.width is None and stream.info is not None:
                    video.base = replace(video.base, width=stream.info.width, height=stream.info.height)
                self._jobs.put(_Job(request, frame.rgb, 1.0, t_ms=frame.t_ms, video=video))
            video.cut_short = stream.truncated or stream.end not in (None, "complete")
        except MediaError as exc:
            video.base = failed(video.base, "decode", exc)
        except Exception as exc:  # a bug must cost this part, not leave it in flight for ever
            log.exception("sampling %s failed unexpectedly", request.part.uri)
            video.base = failed(video.base, "decode", MediaError("internal", repr(exc)))
        self._jobs.put(_Job(request, video=video, end=True))

    # --- analysis (one thread) --------------------------------------------------------------

    def _analyse_loop(self) -> None:
        while not self._stopping.is_set():
            batch = next_batch(self._jobs, self.options.batch_size, self.options.batch_wait_ms)
            if batch:
                try:
                    self._analyse(batch)
                except Exception as exc:  # a bug or a model failure costs this batch only
                    log.exception("visual analysis failed on a batch of %d", len(batch))
                    for job in batch:
                        self._fail_job(job, MediaError("internal", repr(exc)))

    def _analyse(self, batch: list[_Job]) -> None:
        images = [job for job in batch if not job.end]
        results = self.analyzer.analyse_images([job.rgb for job in images], [job.scale for job in images])
        for job, result in zip(images, results):
            if job.video is None:
                self._image_done(job, result)
            else:
                self._frame_done(job, result)
        for job in batch:
            if job.end:
                self._video_done(job)

    def _image_done(self, job: _Job, result: ImageAnalysis) -> None:
        base = job.base
        wants_text = self.ocr is not None and self.ocr_wanted
        findings = replace(
            base, status="ok", objects=result.objects, faces=result.faces, labels=result.labels,
            matches=result.matches, phash=_hex64(result.signature), models=dict(self.analyzer.models),
            timings_ms={**base.timings_ms, "analyse": result.analyse_ms},
            flags=base.flags + (("ocr_pending",) if wants_text else ()), analysed_at=self.clock_ms(),
        )
        if wants_text:
            self._emit(job.request.tag, findings)
            self._ocr_jobs.put((job.request, job.rgb))
        else:
            self._finish(job.request, findings)

    def _frame_done(self, job: _Job, result: ImageAnalysis) -> None:
        video, t_ms = job.video, job.t_ms or 0
        video.objects.add(t_ms, result.objects)
        video.faces_peak = max(video.faces_peak, len(result.faces))
        video.analysed_ms = max(video.analysed_ms, t_ms)
        for label in result.labels:
            video.labels[label.label] = max(label.score, video.labels.get(label.label, 0.0))
        for match in result.matches:
            seen = video.matches.get(match.ref_id)
            if seen is None or t_ms < (seen.t_ms or 0):
                video.matches[match.ref_id] = replace(match, t_ms=t_ms)
        if video.objects.frames == 1 or video.objects.frames - video.reported >= self.options.progress_frames:
            video.reported = video.objects.frames
            self._emit(job.request.tag, self._video_findings(video, "partial"))

    def _video_done(self, job: _Job) -> None:
        video = job.video
        if video.base.status == "error" and video.objects.frames == 0:
            self._finish(job.request, video.base)
            return
        if video.objects.frames == 0:
            error = MediaError("no_frames", "the video has no decodable frame")
            self._finish(job.request, failed(video.base, "decode", error))
            return
        self._finish(job.request, self._video_findings(video, "ok"))

    def _video_findings(self, video: _Video, status: str) -> MediaFindings:
        labels = sorted(video.labels.items(), key=lambda item: -item[1])[: self.analyzer.top_labels]
        summary = VideoSummary(
            frames_sampled=video.objects.frames, analysed_ms=video.analysed_ms,
            objects=video.objects.result(), faces_peak=video.faces_peak,
            labels=tuple(SceneLabel(label, score) for label, score in labels),
        )
        flags = video.base.flags + (("video_cut_short",) if video.cut_short and status == "ok" else ())
        return replace(video.base, status=status, video=summary, matches=tuple(video.matches.values()),
                       models=dict(self.analyzer.models), flags=flags, analysed_at=self.clock_ms())

    def _fail_job(self, job: _Job, error: MediaError) -> None:
        if job.video is None:
            self._finish(job.request, failed(job.base or _base(job.request), "analyse", error))
        elif job.end:
            self._finish(job.request, failed(job.video.base, "analyse", error))

    # --- OCR (one thread) -------------------------------------------------------------------

    def _ocr_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                request, rgb = self._ocr_jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                text = self.ocr.read(rgb).text
            except Exception:  # OCR is an extra: a failure costs this image's text only
                log.exception("OCR failed on %s", request.part.uri)
                text = ""
            self._finish(request, MediaText(request.tag, request.content_key, request.part.part_id, text))

    # --- results --------------------------------------------------------------------------

    def _emit(self, tag: Any, result: Any) -> None:
        with self._lock:
            self._results[tag].append(result)

    def _finish(self, request: PartRequest, result: Any) -> None:
        """The part's last result: it leaves in_flight in the same step, so a take never sees a
        part that is neither in flight nor reported."""
        if isinstance(result, MediaFindings) and not result.analysed_at:
            result = replace(result, analysed_at=self.clock_ms())
        with self._lock:
            self._results[request.tag].append(result)
            self._in_flight.discard((request.content_key, request.part.part_id))


def next_batch(jobs: queue.Queue, size: int, wait_ms: float) -> list[Any]:
    """Up to `size` jobs: the first one waited for (0.1 s at most), the rest for `wait_ms`."""
    try:
        first = jobs.get(timeout=0.1)
    except queue.Empty:
        return []
    batch = [first]
    deadline = time.monotonic() + wait_ms / 1000
    while len(batch) < size:
        remaining = deadline - time.monotonic()
        try:
            batch.append(jobs.get(timeout=remaining) if remaining > 0 else jobs.get_nowait())
        except queue.Empty:
            break
    return batch


def _base(request: PartRequest) -> MediaFindings:
    part = request.part
    return MediaFindings(content_key=request.content_key, part_id=part.part_id, kind=part.kind,
                         uri=shown_uri(part.uri), status="partial", collected_at=request.collected_at)


def shown_uri(uri: str) -> str:
    """The URI as findings repeat it: an inline data: URI is named by its header and size only."""
    if uri[:5].lower() == "data:":
        header = uri.split(",", 1)[0]
        return f"{header[:64]},…({len(uri)} characters)"
    return uri[:2048]


def failed(base: MediaFindings, stage: str, error: MediaError) -> MediaFindings:
    return replace(base, status="error", failure=Failure(stage, error.code, error.detail))


def _hex64(signature: Any) -> str | None:
    """The image's perceptual hash as 16 hex digits (story clustering compares reposts by it)."""
    phash = getattr(signature, "phash", None)
    return None if phash is None else f"{phash:016x}"
