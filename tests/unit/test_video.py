"""Unit tests of video frame sampling (the shared real videos, synthetic videos with known cuts
written by OpenCV, broken inputs) and of the per-part aggregation of detections."""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from schemas.errors import MediaError
from trackius.settings import SHARED_DATA
from udfs.video import (
    COMPLETE,
    INTERVAL,
    MAX_DURATION,
    MAX_FRAMES,
    SHOT,
    START,
    TRUNCATED,
    Frame,
    ObjectSummary,
    VideoObject,
    aggregate,
    probe,
    sample_frames,
    sample_frames_from_bytes,
)

VIDEOS = SHARED_DATA / "video"
BOTTLE = VIDEOS / "bottle-detection.mp4"  # 640x360, 29.83 fps, 1189 frames, index at the end
PERSON = VIDEOS / "one-by-one-person-detection.mp4"  # 768x432, 10 fps, 1394 frames, index first
SYNTH_FPS = 25.0
CUTS = (50, 75)  # frame numbers where the synthetic video changes scene


def scene(kind: int, index: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A BGR frame of one of three distinct scenes, with a square that moves frame by frame."""
    height, width = size
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    if kind == 0:
        image = np.dstack([np.tile(ramp, (height, 1))] * 3)
    elif kind == 1:
        column = np.linspace(255, 40, height, dtype=np.float32)[:, None]
        ramp_down = np.tile(column, (1, width))
        image = np.dstack([ramp_down, np.full((height, width), 90.0), ramp_down / 2])
    else:
        yy, xx = np.mgrid[0:height, 0:width]
        image = np.dstack([((xx // 40 + yy // 40) % 2) * 200.0 + 30] * 3)
    image = image.astype(np.uint8)
    x = (index * 4) % (width - 40)
    image[100:140, x : x + 40] = (0, 0, 255)
    return image


def write_video(path: Path, kinds: list[int]) -> Path:
    """Write one frame per entry of `kinds` (the scene of that frame) as MJPG at 25 fps."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), SYNTH_FPS, (320, 240))
    assert writer.isOpened()
    for index, kind in enumerate(kinds):
        writer.write(scene(kind, index))
    writer.release()
    return path


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kinds = [0] * CUTS[0] + [1] * (CUTS[1] - CUTS[0]) + [2] * (150 - CUTS[1])
    return write_video(tmp_path_factory.mktemp("video") / "cuts.avi", kinds)


@pytest.mark.parametrize("path", [BOTTLE, PERSON], ids=["bottle", "person"])
def test_real_video_steady_rate_from_zero(path: Path) -> None:
    """A real video is read to the end: t=0 first, increasing times, one frame per second."""
    stream = sample_frames(path, every_s=1.0, max_frames=1000)
    frames = list(stream)
    info = probe(path)
    assert stream.end == COMPLETE and not stream.truncated and stream.decoded == info.frame_count
    assert (frames[0].t_ms, frames[0].index, frames[0].reason) == (0, 0, START)
    assert all(f.reason == INTERVAL for f in frames[1:])  # single-shot videos: no cuts seen
    times = [f.t_ms for f in frames]
    assert times == sorted(set(times))
    frame_ms = 1000 / info.fps
    assert len(frames) == math.floor((info.frame_count - 1) / info.fps) + 1
    assert all(k * 1000 <= t < k * 1000 + frame_ms + 1 for k, t in enumerate(times))
    assert all(abs(f.t_ms - f.index * frame_ms) <= 1 for f in frames)


def test_probe_reads_the_container() -> None:
    """probe gives size, rate, count and duration of the shared videos."""
    bottle, person = probe(BOTTLE), probe(PERSON)
    assert (bottle.width, bottle.height, bottle.frame_count) == (640, 360, 1189)
    assert bottle.fps == pytest.approx(29.83, abs=0.01)
    assert (person.width, person.height, person.fps, person.frame_count) == (768, 432, 10.0, 1394)
    assert person.duration_s == pytest.approx(139.4)


def test_frames_are_rgb_and_downscaled() -> None:
    """Frames come out uint8 RGB with the longest side at most max_side, never upscaled."""
    small = next(sample_frames(PERSON, max_side=320))
    assert small.rgb.shape == (180, 320, 3) and small.rgb.dtype == np.uint8
    assert next(sample_frames(BOTTLE, max_side=2000)).rgb.shape == (360, 640, 3)


def test_rgb_channel_order(cut_video: Path) -> None:
    """The moving square written as BGR red reads back as RGB red."""
    frame = next(sample_frames(cut_video))
    red = frame.rgb[120, 20]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_max_frames_stops_decoding() -> None:
    """max_frames bounds both the samples and the decoding behind them."""
    stream = sample_frames(BOTTLE, every_s=0.5, max_frames=5)
    frames = list(stream)
    assert len(frames) == 5 and stream.end == MAX_FRAMES
    assert stream.decoded == frames[-1].index + 1


def test_max_duration_stops_at_the_limit() -> None:
    """max_duration_s stops at the first frame past the limit."""
    stream = sample_frames(PERSON, every_s=1.0, max_duration_s=3.0)
    frames = list(stream)
    assert [f.t_ms for f in frames] == [0, 1000, 2000, 3000] and stream.end == MAX_DURATION
    assert stream.decoded == 32  # frames 0..30 are within 3 s, frame 31 (3.1 s) stops it


def test_first_frame_before_the_file_is_decoded() -> None:
    """The stream is progressive: the first frame is out after decoding one frame, not 1394."""
    stream = sample_frames(PERSON)
    assert stream.decoded == 0 and stream.info is None  # nothing opened before next()
    first = next(stream)
    assert first.index == 0 and stream.decoded == 1 and stream.info is not None
    assert stream.info.frame_count == 1394
    stream.close()


def test_shot_changes_found_at_the_cuts_only(cut_video: Path) -> None:
    """Each synthetic cut yields one 'shot' frame within one look of it, and nothing else does."""
    frames = list(sample_frames(cut_video, every_s=100.0))
    shots = [f for f in frames if f.reason == SHOT]
    assert [f.reason for f in frames] == [START, SHOT, SHOT]
    look_frames = round(SYNTH_FPS / 10)  # looks at 10 Hz: every 2nd frame at 25 fps
    for cut, shot in zip(CUTS, shots, strict=True):
        assert cut <= shot.index < cut + look_frames
        assert shot.t_ms == round(shot.index * 1000 / SYNTH_FPS)


def test_shot_and_interval_frames_together(cut_video: Path) -> None:
    """With both active, the steady grid is kept and the cuts are added."""
    frames = list(sample_frames(cut_video, every_s=1.0))
    assert [(f.t_ms, f.reason) for f in frames] == [
        (0, START), (1000, INTERVAL), (2000, SHOT), (3000, INTERVAL), (3040, SHOT),
        (4000, INTERVAL), (5000, INTERVAL),
    ]


def test_a_strobe_yields_one_shot_frame(tmp_path: Path) -> None:
    """Scene flips every 2 frames for 0.4 s: the cooldown turns them into one shot frame."""
    kinds = [0] * 50 + [1, 1, 0, 0] * 3 + [0] * 38
    frames = list(sample_frames(write_video(tmp_path / "strobe.avi", kinds), every_s=100.0))
    assert [(f.index, f.reason) for f in frames] == [(0, START), (50, SHOT)]


def test_no_shots_above_a_high_threshold(cut_video: Path) -> None:
    """The threshold is honoured: above every difference, only the start is sampled."""
    frames = list(sample_frames(cut_video, every_s=100.0, shot_threshold=0.99))
    assert [f.reason for f in frames] == [START]


@pytest.mark.parametrize(
    ("data", "expect"),
    [(os.urandom(50_000), "cannot open"), (b"", "empty")],
    ids=["random-bytes", "zero-length"],
)
def test_unreadable_media_raise_no_frames(tmp_path: Path, data: bytes, expect: str) -> None:
    """Random bytes and empty files raise MediaError('no_frames') at the first next()."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    for stream in (sample_frames(path), sample_frames_from_bytes(data, tmp_dir=tmp_path)):
        with pytest.raises(MediaError, match=expect) as caught:
            next(stream)
        assert caught.value.code == "no_frames"
    assert list(tmp_path.iterdir()) == [path]  # the temporary copy is gone


def test_missing_file_raises_no_frames(tmp_path: Path) -> None:
    """A path that does not exist is a no_frames error naming the file."""
    with pytest.raises(MediaError, match="nothing.mp4: no such file"):
        next(sample_frames(tmp_path / "nothing.mp4"))


def run_bounded(data: bytes, tmp_path: Path) -> tuple[list[Frame], Any]:
    """Sample in a thread and fail rather than hang if it does not finish in 20 s."""
    result: dict[str, Any] = {}

    def work() -> None:
        stream = sample_frames_from_bytes(data, tmp_dir=tmp_path, every_s=1.0)
        try:
            result["frames"] = list(stream)
            result["stream"] = stream
        except MediaError as exc:
            result["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "sampling a truncated video hung"
    return result.get("frames", []), result.get("stream") or result.get("error")


def test_truncated_mp4_keeps_the_frames_before_the_cut(tmp_path: Path) -> None:
    """30 % of a faststart mp4: the frames up to the cut come out and the stream says truncated."""
    data = PERSON.read_bytes()
    frames, stream = run_bounded(data[: int(len(data) * 0.3)], tmp_path)
    assert stream.truncated and stream.end == TRUNCATED
    assert 10 <= len(frames) and frames[-1].t_ms < 0.4 * 139_400
    assert [f.t_ms for f in frames] == [1000 * k for k in range(len(frames))]
    assert list(tmp_path.iterdir()) == []


def test_truncated_mp4_without_its_index_is_no_frames(tmp_path: Path) -> None:
    """30 % of an mp4 whose index sits at the end cannot be opened: a clear no_frames error."""
    data = BOTTLE.read_bytes()
    frames, error = run_bounded(data[: int(len(data) * 0.3)], tmp_path)
    assert frames == [] and isinstance(error, MediaError) and error.code == "no_frames"
    assert "index" in error.detail


def test_bytes_temp_file_deleted_on_early_stop(tmp_path: Path) -> None:
    """Stopping early (close, or dropping the stream) deletes the temporary file."""
    data = BOTTLE.read_bytes()
    stream = sample_frames_from_bytes(data, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # lazy: nothing written before next()
    next(stream)
    assert len(list(tmp_path.iterdir())) == 1
    stream.close()
    assert list(tmp_path.iterdir()) == []
    for frame in sample_frames_from_bytes(data, tmp_dir=tmp_path):
        break
    assert frame.index == 0 and list(tmp_path.iterdir()) == []


def test_bad_arguments_fail_at_the_call() -> None:
    """Caller mistakes are ValueErrors raised at once, not media errors later."""
    with pytest.raises(ValueError):
        sample_frames(BOTTLE, every_s=0)
    with pytest.raises(ValueError):
        sample_frames_from_bytes(b"x", max_frames=0)


@dataclass(frozen=True)
class Det:
    label: str
    score: float


FRAMES = [
    (0, [Det("person", 0.6), Det("dog", 0.3)]),
    (1000, [Det("person", 0.9), Det("person", 0.4)]),
    (2000, []),
    (3000, [Det("dog", 0.95), Det("car", 0.5)]),
    (4000, [Det("person", 0.9)]),
]


def test_aggregate_summarises_each_label() -> None:
    """One VideoObject per label: first/last seen, peak and when, frames, the most in one frame;
    by peak descending."""
    assert aggregate(FRAMES) == (
        VideoObject("dog", 0, 3000, 0.95, 3000, 2, 1),
        VideoObject("person", 0, 4000, 0.9, 1000, 3, 2),
        VideoObject("car", 3000, 3000, 0.5, 3000, 1, 1),
    )


def test_aggregate_ignores_arrival_order() -> None:
    """Frames in any order give the same summary (equal peaks: the earlier time wins)."""
    assert aggregate(reversed(FRAMES)) == aggregate(FRAMES)
    assert aggregate([]) == ()


def test_summary_is_incremental() -> None:
    """ObjectSummary gives the findings so far mid-video, then the same answer as aggregate."""
    summary = ObjectSummary()
    for t_ms, detections in FRAMES[:2]:
        summary.add(t_ms, detections)
    assert summary.result() == (
        VideoObject("person", 0, 1000, 0.9, 1000, 2, 2),
        VideoObject("dog", 0, 0, 0.3, 0, 1, 1),
    )
    for t_ms, detections in FRAMES[2:]:
        summary.add(t_ms, detections)
    assert summary.result() == aggregate(FRAMES) and summary.frames == 5


def test_summary_rejects_a_nan_score() -> None:
    """A NaN score is a model bug, refused rather than silently ranking anywhere."""
    with pytest.raises(ValueError, match="nan"):
        ObjectSummary().add(0, [Det("cat", float("nan"))])
