"""Scene and object labels (ImageNet top-k) from MobileNetV2, plus its last feature map.

The model takes batches, and one forward pass serves two analyses: the logits become labels,
and the 1280x7x7 feature map feeds the known-image embedding (udfs/known_images.py). Batched
results equal per-image results (tests/unit/test_vision_models.py proves it for this model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udfs.models import ModelSpec, open_model, read_labels

SIZE = 224
RESIZE = 256
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FEATURES = "627"  # the dequantised feature map before global pooling (see the manifest)


@dataclass(frozen=True)
class Label:
    label: str
    score: float


@dataclass(frozen=True)
class SceneOutput:
    logits: np.ndarray  # [N, 1000]
    features: np.ndarray  # [N, 1280, 7, 7]


MAX_ASPECT = 4.0  # longer side / shorter side before the short side is scaled to 256


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (3, 224, 224): short side to 256, centre crop, normalise."""
    import cv2

    rgb = _bounded_aspect(rgb)
    height, width = rgb.shape[:2]
    scale = RESIZE / min(height, width)
    size = (max(SIZE, round(width * scale)), max(SIZE, round(height * scale)))
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (resized.shape[0] - SIZE) // 2, (resized.shape[1] - SIZE) // 2
    crop = resized[top:top + SIZE, left:left + SIZE].astype(np.float32) / 255.0
    return ((crop - MEAN) / STD).transpose(2, 0, 1)


def _bounded_aspect(rgb: np.ndarray) -> np.ndarray:
    """A banner 1 pixel high would otherwise be scaled 256-fold along its length (a 1280-px
    strip: 327,680 px long): pad its short side with black up to a quarter of its long side."""
    import cv2

    height, width = rgb.shape[:2]
    short = math.ceil(max(height, width) / MAX_ASPECT)
    if min(height, width) >= short:
        return rgb
    if height < width:
        top = (short - height) // 2
        return cv2.copyMakeBorder(rgb, top, short - height - top, 0, 0, cv2.BORDER_CONSTANT, value=0)
    left = (short - width) // 2
    return cv2.copyMakeBorder(rgb, 0, 0, left, short - width - left, cv2.BORDER_CONSTANT, value=0)


class SceneModel:
    def __init__(self, model_dir: Path, spec: ModelSpec) -> None:
        self.session = open_model(model_dir, spec, extra_outputs=(FEATURES,))
        self.labels = read_labels(model_dir, spec)
        self.version = spec.version
        self.input = spec.raw["input"]["name"]
        self.output = spec.raw["output"]["name"]

    def forward(self, images: Sequence[np.ndarray]) -> SceneOutput:
        """One run over the whole batch of RGB images."""
        if not images:
            return SceneOutput(np.zeros((0, len(self.labels)), np.float32), np.zeros((0, 1280, 7, 7), np.float32))
        batch = np.stack([preprocess(image) for image in images])
        logits, features = self.session.run([self.output, FEATURES], {self.input: batch})
        return SceneOutput(logits, features)

    def top_labels(self, logits: np.ndarray, k: int = 5, min_score: float = 0.05) -> list[tuple[Label, ...]]:
        shifted = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        result = []
        for row in probabilities:
            best = np.argsort(row)[::-1][:k]
            result.append(tuple(Label(self.labels[i], round(float(row[i]), 4)) for i in best if row[i] >= min_score))
        return result
