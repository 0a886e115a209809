"""Video frame sampling for the visual analysis.

`sample_frames` walks a video once, front to back, and yields the frames worth showing to the
image models: the first frame, one every `every_s` seconds of video time, and the first frame
after each shot change. It is lazy, so a long video is analysed while it is still being decoded,
and bounded: it stops after `max_frames` samples or `max_duration_s` of video, and holds only the
current frame and a 64x36 thumbnail of the last looked-at one.

Shot changes: the mean absolute difference of 64x36 grayscale thumbnails of frames looked at
`look_hz` times a second of video time. Chosen over a histogram distance because a histogram
ignores layout, so a cut between two scenes of similar tones (two speakers in one studio) goes
unseen, while shrinking to 64x36 with area averaging already removes the noise and compression
artefacts that make a raw pixel difference jumpy. Looking at a fixed video-time rate, not every
frame, keeps both the cost and the meaning of the threshold the same at 10 or 60 fps. On the
shared videos (single shots, with a person walking up to the camera) the largest difference at
10 Hz is 0.047 against 0.12 for the default threshold; a hard cut between unrelated scenes is
typically 0.15 to 0.4. A cooldown turns a dissolve, which crosses the threshold on several looks
in a row, into one sample.

Cost: OpenCV's `grab()` decodes every frame anyway (a compressed stream cannot skip), `retrieve()`
adds the colour conversion, so frames nobody looks at are only grabbed.

`aggregate` and `ObjectSummary`, which fold the detections on the sampled frames into one
`VideoObject` per label, live in `udfs.video_objects` and are re-exported here.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import cv2
import numpy as np

from schemas.errors import MediaError
from schemas.media import VideoObject
from udfs.video_objects import Detection, ObjectSummary, aggregate

__all__ = ["COMPLETE", "INTERVAL", "MAX_DURATION", "MAX_FRAMES", "SHOT", "START", "TRUNCATED",
           "Detection", "Frame", "FrameStream", "ObjectSummary", "VideoInfo", "VideoObject",
           "aggregate", "probe", "sample_frames", "sample_frames_from_bytes"]

START, INTERVAL, SHOT = "start", "interval", "shot"
# Why a FrameStream ended: read to the end, stopped by a bound, or cut short by bad data.
COMPLETE, TRUNCATED = "complete", "truncated"
MAX_FRAMES, MAX_DURATION = "max_frames", "max_duration"
_THUMB = (64, 36)
# Used for timing only when the container gives neither a frame rate nor usable timestamps.
_ASSUMED_FPS = 25.0
# Containers estimate the frame count from the duration, so a short tail is not a truncation.
_COUNT_SLACK = 0.01


@dataclass(frozen=True)
class Frame:
    """One sampled frame: presentation time, frame number, RGB pixels and why it was taken."""

    t_ms: int
    index: int
    rgb: np.ndarray  # (H, W, 3) uint8 RGB, longest side at most max_side
    reason: str  # START, INTERVAL or SHOT


@dataclass(frozen=True)
class VideoInfo:
    """What the container says; 0 where it does not know."""

    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float


@dataclass(frozen=True)
class _Policy:
    every_ms: float
    shot_threshold: float
    cooldown_ms: float
    look_hz: float
    max_frames: int
    max_side: int
    max_duration_ms: float


class _Outcome:
    """Shared by a FrameStream and its generator (no reference cycle, so an abandoned stream is
    closed, and its temporary file deleted, as soon as the caller drops it)."""

    def __init__(self) -> None:
        self.info: VideoInfo | None = None
        self.end: str | None = None
        self.decoded = 0


class FrameStream(Iterator[Frame]):
    """The frames of one video, decoded on demand. Once exhausted, `end` says why it stopped
    (COMPLETE, MAX_FRAMES, MAX_DURATION or TRUNCATED) and `decoded` how many frames were read.
    Opening errors surface as MediaError("no_frames") at the first next()."""

    def __init__(self, frames: Generator[Frame, None, None], outcome: _Outcome) -> None:
        self._frames = frames
        self._outcome = outcome

    def __next__(self) -> Frame:
        return next(self._frames)

    def close(self) -> None:
        """Release the decoder (and a temporary file) without reading further."""
        self._frames.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def info(self) -> VideoInfo | None:
        return self._outcome.info

    @property
    def end(self) -> str | None:
        return self._outcome.end

    @property
    def decoded(self) -> int:
        return self._outcome.decoded

    @property
    def truncated(self) -> bool:
        return self._outcome.end == TRUNCATED


def probe(path: str | Path) -> VideoInfo:
    """The container's description of a video; MediaError("no_frames") if OpenCV cannot open it."""
    cap = _open(Path(path))
    try:
        return _info(cap)
    finally:
        cap.release()


def sample_frames(
    path: str | Path,
    every_s: float = 1.0,
    shot_threshold: float = 0.12,
    max_frames: int = 300,
    max_side: int = 640,
    max_duration_s: float | None = None,
    *,
    shot_cooldown_s: float = 0.5,
    look_hz: float = 10.0,
) -> FrameStream:
    """Sample a video file lazily (see the module docstring). Nothing is opened before next()."""
    policy = _policy(
        every_s, shot_threshold, max_frames, max_side, max_duration_s, shot_cooldown_s, look_hz
    )
    outcome = _Outcome()
    return FrameStream(_sample(Path(path), policy, outcome), outcome)


def sample_frames_from_bytes(
    data: bytes, *, suffix: str = ".mp4", tmp_dir: str | Path | None = None, **options: Any
) -> FrameStream:
    """Sample a video held in memory, through a temporary file (OpenCV reads only paths) that is
    deleted when the stream ends, is closed, or is dropped. `options` are sample_frames's."""
    policy = _policy(**options)
    outcome = _Outcome()
    return FrameStream(_sample_bytes(data, suffix, tmp_dir, policy, outcome), outcome)


def _policy(
    every_s: float = 1.0,
    shot_threshold: float = 0.12,
    max_frames: int = 300,
    max_side: int = 640,
    max_duration_s: float | None = None,
    shot_cooldown_s: float = 0.5,
    look_hz: float = 10.0,
) -> _Policy:
    # Bad arguments are the caller's bug: fail at the call, not lazily at the first next().
    if not (every_s > 0 and look_hz > 0 and max_frames >= 1 and max_side >= 8):
        raise ValueError("every_s and look_hz must be > 0, max_frames >= 1, max_side >= 8")
    limit = math.inf if max_duration_s is None else max_duration_s * 1000.0
    return _Policy(
        every_s * 1000.0, shot_threshold, shot_cooldown_s * 1000.0, look_hz, max_frames, max_side,
        limit,
    )


def _sample_bytes(
    data: bytes, suffix: str, tmp_dir: str | Path | None, policy: _Policy, outcome: _Outcome
) -> Generator[Frame, None, None]:
    if not data:
        raise MediaError("no_frames", "the video is empty (0 bytes)")
    with tempfile.NamedTemporaryFile(prefix="trackius-video-", suffix=suffix, dir=tmp_dir) as tmp:
        tmp.write(data)
        tmp.flush()
        yield from _sample(Path(tmp.name), policy, outcome)


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise MediaError("no_frames", f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise MediaError("no_frames", f"{path.name}: the file is empty (0 bytes)")
    # FFmpeg only: CAP_ANY would also try the image-sequence reader, which treats '%d' in a
    # name as a pattern.
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise MediaError("no_frames", f"{path.name}: OpenCV/FFmpeg cannot open it as a video "
                                      "(unknown container, or its index is missing or cut off)")
    return cap


def _info(cap: cv2.VideoCapture) -> VideoInfo:
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else 0.0
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if math.isfinite(count) and count > 0 else 0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    return VideoInfo(width, height, fps, count, count / fps if fps and count else 0.0)


def _sample(path: Path, policy: _Policy, outcome: _Outcome) -> Generator[Frame, None, None]:
    cap = _open(path)
    try:
        outcome.info = info = _info(cap)
        if not cap.grab():
            raise MediaError("no_frames", f"{path.name}: opens as a video but no frame decodes")
        yield from _walk(cap, info, policy, outcome)
    finally:
        cap.release()


def _walk(
    cap: cv2.VideoCapture, info: VideoInfo, policy: _Policy, outcome: _Outcome
) -> Iterator[Frame]:
    """Runs with the first frame already grabbed; each loop turn handles one grabbed frame."""
    schedule = _Schedule(policy, max(1, round((info.fps or _ASSUMED_FPS) / policy.look_hz)))
    index, t_ms, sampled, grabbed = 0, 0.0, 0, True
    while grabbed:
        outcome.decoded = index + 1
        t_ms = _time_ms(cap, index, info.fps, t_ms)
        if round(t_ms) > policy.max_duration_ms:  # rounded: 3000.0000000004 ms is 3 s
            outcome.end = MAX_DURATION
            return
        if schedule.needs_pixels(index, t_ms):
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                _pixels_lost(index, outcome)
                return
            reason = schedule.decide(index, t_ms, bgr)
            if reason is not None:
                sampled += 1
                if sampled >= policy.max_frames:
                    outcome.end = MAX_FRAMES  # set before the yield: the caller may stop here
                yield Frame(round(t_ms), index, _fit_rgb(bgr, policy.max_side), reason)
                if sampled >= policy.max_frames:
                    return
        index += 1
        grabbed = cap.grab()
    short = info.frame_count and outcome.decoded < info.frame_count * (1 - _COUNT_SLACK) - 1
    outcome.end = TRUNCATED if short else COMPLETE


def _pixels_lost(index: int, outcome: _Outcome) -> None:
    """A frame was grabbed but its pixels would not come out: bad data from here on."""
    if index == 0:
        raise MediaError("no_frames", "the first frame is found but does not decode")
    outcome.end = TRUNCATED


class _Schedule:
    """Decides, frame by frame, whether to sample: the start, the every_ms grid, and cuts seen
    on the frames looked at (every `look_every`-th)."""

    def __init__(self, policy: _Policy, look_every: int) -> None:
        self.policy = policy
        self.look_every = look_every
        self.next_due_ms = 0.0
        self.last_shot_ms = -math.inf
        self.thumb: np.ndarray | None = None

    def needs_pixels(self, index: int, t_ms: float) -> bool:
        return t_ms >= self.next_due_ms or index % self.look_every == 0

    def decide(self, index: int, t_ms: float, bgr: np.ndarray) -> str | None:
        due = t_ms >= self.next_due_ms
        shot = index % self.look_every == 0 and self._is_cut(bgr, t_ms)
        if due:
            # Stay on the every_ms grid, even after a gap, so the rate does not drift.
            every = self.policy.every_ms
            self.next_due_ms = (math.floor(t_ms / every) + 1) * every
        if index == 0:
            return START
        if shot:
            return SHOT
        return INTERVAL if due else None

    def _is_cut(self, bgr: np.ndarray, t_ms: float) -> bool:
        thumb = _thumbnail(bgr)
        previous, self.thumb = self.thumb, thumb
        if previous is None:
            return False
        diff = float(np.abs(thumb - previous).mean()) / 255.0
        cooling = t_ms - self.last_shot_ms < self.policy.cooldown_ms
        if diff < self.policy.shot_threshold or cooling:
            return False
        self.last_shot_ms = t_ms
        return True


def _time_ms(cap: cv2.VideoCapture, index: int, fps: float, previous_ms: float) -> float:
    """The frame's presentation time: the container's when sane (finite, and moving forward
    after the first frame), else index / fps; never earlier than the previous frame's."""
    pos = cap.get(cv2.CAP_PROP_POS_MSEC)
    if math.isfinite(pos) and pos >= 0 and (index == 0 or pos > previous_ms):
        return pos
    return max(previous_ms, index * 1000.0 / (fps or _ASSUMED_FPS))


def _thumbnail(bgr: np.ndarray) -> np.ndarray:
    # Striding down to about twice the thumbnail before averaging halves the cost of a look
    # (0.25 -> 0.14 ms at 768x432) and still averages 4 pixels into each thumbnail pixel.
    height, width = bgr.shape[:2]
    step = max(1, min(height // (2 * _THUMB[1]), width // (2 * _THUMB[0])))
    small = cv2.resize(bgr[::step, ::step], _THUMB, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.int16)


def _fit_rgb(bgr: np.ndarray, max_side: int) -> np.ndarray:
    height, width = bgr.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Area averaging only where aliasing would show (2x and more): at 768 -> 640 it costs
        # 2.3 ms a frame against 0.4 ms for bilinear.
        method = cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR
        bgr = cv2.resize(bgr, size, interpolation=method)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
