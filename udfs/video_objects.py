"""The per-part summary of what was seen in a video: the detections on its sampled frames folded
into one `VideoObject` per label (when first and last seen, the peak score and when, in how many
frames). Pure: no OpenCV, no clock; frames may arrive in any order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from schemas.media import VideoObject

__all__ = ["Detection", "ObjectSummary", "aggregate"]


class Detection(Protocol):
    """Anything with a label and a score, e.g. the image models' detections."""

    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float: ...


class ObjectSummary:
    """Incremental form of `aggregate`: add sampled frames as they are analysed, read `result()`
    at any point for the findings so far. Frames may come in any order; the result is the same."""

    def __init__(self) -> None:
        self._objects: dict[str, VideoObject] = {}
        self.frames = 0

    def add(self, t_ms: int, detections: Sequence[Detection]) -> None:
        self.frames += 1
        best: dict[str, float] = {}
        counts: dict[str, int] = {}
        for detection in detections:
            score = float(detection.score)
            if not math.isfinite(score):
                raise ValueError(f"detection {detection.label!r} at {t_ms} ms has score {score}")
            best[detection.label] = max(score, best.get(detection.label, -math.inf))
            counts[detection.label] = counts.get(detection.label, 0) + 1
        for label, score in best.items():
            self._objects[label] = _merge(self._objects.get(label), label, t_ms, score, counts[label])

    def result(self) -> tuple[VideoObject, ...]:
        """Objects by peak score, highest first (ties: seen first, then label)."""
        ranked = sorted(self._objects.values(), key=lambda o: (-o.peak_score, o.first_ms, o.label))
        return tuple(ranked)


def _merge(seen: VideoObject | None, label: str, t_ms: int, score: float, count: int) -> VideoObject:
    if seen is None:
        return VideoObject(label, t_ms, t_ms, score, t_ms, 1, count)
    # On equal peaks the earlier time wins, so arrival order cannot change the answer.
    better = score > seen.peak_score or (score == seen.peak_score and t_ms < seen.peak_ms)
    return VideoObject(
        label,
        min(seen.first_ms, t_ms),
        max(seen.last_ms, t_ms),
        score if better else seen.peak_score,
        t_ms if better else seen.peak_ms,
        seen.frames + 1,
        max(seen.peak_count, count),
    )


def aggregate(frames: Iterable[tuple[int, Sequence[Any]]]) -> tuple[VideoObject, ...]:
    """Summarise a video part from (t_ms, detections) per sampled frame."""
    summary = ObjectSummary()
    for t_ms, detections in frames:
        summary.add(t_ms, detections)
    return summary.result()
