"""Visual analysis core, batch in, batch out: the same code answers the Flink job and the CLI.

Per batch of decoded images (photos or sampled video frames): MobileNetV2 once over the whole
batch (scene labels, and the feature map that the known-image signatures come from), the
known-image index over the batch, then YOLOX-nano and UltraFace per image (their graphs take one
image at a time). Boxes are mapped back to the pixels of the image as published.

Each model is optional: a missing or mismatched file disables its analysis with one log line,
and the others carry on. Pure apart from the models: no I/O, no clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import ModelError
from schemas.media import Detection, KnownImage, SceneLabel
from udfs.known_images import ImageIndex, sign_batch
from udfs.models import read_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageAnalysis:
    """What the models found in one image; boxes in the pixels of the image as published."""

    objects: tuple[Detection, ...] = ()
    faces: tuple[Detection, ...] = ()
    labels: tuple[SceneLabel, ...] = ()
    matches: tuple[KnownImage, ...] = ()
    signature: Any = None  # the known-image signature, for callers that store or compare it
    analyse_ms: float = 0.0  # this image's share of the batch


class VisualAnalyzer:
    def __init__(self, objects: Any = None, faces: Any = None, scenes: Any = None,
                 index: ImageIndex | None = None, top_labels: int = 5) -> None:
        self.objects = objects
        self.faces = faces
        self.scenes = scenes
        self.index = index if index is not None else ImageIndex()
        self.top_labels = top_labels
        self.models = {name: model.version for name, model in
                       (("objects", objects), ("faces", faces), ("scenes", scenes)) if model is not None}

    @classmethod
    def create(cls, model_dir: Path, manifest: Path, index: ImageIndex | None = None) -> VisualAnalyzer:
        from udfs.detectors import FaceDetector, ObjectDetector
        from udfs.scenes import SceneModel

        specs = read_manifest(manifest)
        loaded = {name: _load(kind, model_dir, specs[name]) for name, kind in
                  (("objects", ObjectDetector), ("faces", FaceDetector), ("scenes", SceneModel))}
        return cls(loaded["objects"], loaded["faces"], loaded["scenes"], index)

    def analyse_images(self, images: Sequence[np.ndarray], scales: Sequence[float] | None = None,
                       clock: Callable[[], float] = time.perf_counter) -> list[ImageAnalysis]:
        """`scales[i]` is decoded size / published size of image i (1.0 when not downscaled)."""
        if not images:
            return []
        started = clock()
        scales = scales or [1.0] * len(images)
        labels, signatures = self._scenes(images)
        matches = self.index.match_batch(signatures) if signatures else [None] * len(images)
        results = []
        for i, image in enumerate(images):
            results.append(ImageAnalysis(
                objects=_published(self._detect(self.objects, image), scales[i]),
                faces=_published(self._detect(self.faces, image), scales[i]),
                labels=labels[i],
                matches=() if matches[i] is None else (_known(matches[i]),),
                signature=signatures[i] if signatures else None,
            ))
        share = (clock() - started) * 1000 / len(images)
        return [_with_time(result, share) for result in results]

    def signer(self, max_side: int, max_pixels: int) -> Callable[[str, bytes], tuple[bytes, str]]:
        """signer(kind, media) -> (signature bytes, version): how references are signed, with
        the same decoding and model as the images they are compared with."""
        from udfs.imaging import decode_image
        from udfs.known_images import sign_images, signature_to_bytes

        def sign(kind: str, media: bytes) -> tuple[bytes, str]:
            if self.scenes is None:
                raise ModelError("image references need the scenes model (MobileNetV2), which is not loaded")
            image = decode_image(media, max_side, max_pixels)
            # a reference is signed from several views (mirrored, small), the images it is
            # compared with from one: the extra runs are paid once, when it is added
            signature = sign_images(self.scenes, [image.rgb], reference=True)[0]
            return signature_to_bytes(signature), signature.version

        return sign

    def _scenes(self, images: Sequence[np.ndarray]) -> tuple[list[tuple[SceneLabel, ...]], list[Any]]:
        if self.scenes is None:
            return [()] * len(images), []
        output = self.scenes.forward(images)
        labels = [tuple(SceneLabel(label.label, label.score) for label in row)
                  for row in self.scenes.top_labels(output.logits, self.top_labels)]
        return labels, sign_batch(images, output)

    @staticmethod
    def _detect(model: Any, image: np.ndarray) -> tuple[Any, ...]:
        return () if model is None else model.detect(image)


def _load(kind: type, model_dir: Path, spec: Any) -> Any:
    try:
        return kind(model_dir, spec)
    except ModelError as exc:
        log.warning("%s analysis disabled: %s", spec.name, exc)
        return None


def _published(found: Sequence[Any], scale: float) -> tuple[Detection, ...]:
    factor = 1.0 / scale if scale > 0 else 1.0
    return tuple(Detection(d.label, d.score, tuple(round(v * factor, 1) for v in d.box)) for d in found)


def _known(match: Any) -> KnownImage:
    return KnownImage(match.ref_id, match.name, match.method, match.distance, match.similarity)


def _with_time(result: ImageAnalysis, ms: float) -> ImageAnalysis:
    return replace(result, analyse_ms=round(ms, 2))
