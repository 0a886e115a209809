"""Object detection (YOLOX-nano, COCO) and face detection (UltraFace RFB-320) on one RGB image.

Both graphs are fixed to a batch of one (the manifest's `"batch": 1`), so each image gets its
own run; MobileNetV2 (udfs/scenes.py) is the vision model that batches. Contracts, as verified
by running the files, are in models/vision/manifest.json and shared/data/SOURCES.md.

Boxes come back in the pixels of the image given (x1, y1, x2, y2, clipped to the image), so the
caller may downscale a large image before detection and scale the boxes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from udfs.models import ModelSpec, open_model, read_labels

OBJECT_SIZE = 416
OBJECT_STRIDES = (8, 16, 32)
PAD = 114
FACE_SIZE = (320, 240)  # (width, height), as cv2.resize takes it

# coco.names uses darknet's spellings; users (and COCO itself) write these names instead.
COMMON_NAMES = {
    "aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch",
    "pottedplant": "potted plant", "diningtable": "dining table", "tvmonitor": "tv",
}


@dataclass(frozen=True)
class Detection:
    label: str
    score: float  # rounded to 4 digits
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the image's pixels, 1 decimal


def as_rgb(image: np.ndarray) -> np.ndarray:
    """The (H, W, 3) RGB pixels of an RGB, RGBA (alpha dropped) or grayscale image."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    return image[:, :, :3]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, classes: np.ndarray | None = None) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first; with `classes`, boxes only
    suppress boxes of their own class (OpenCV's batched NMS offsets each class apart)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    if classes is None:
        kept = cv2.dnn.NMSBoxes(xywh, scores, 0.0, iou)
    else:
        kept = cv2.dnn.NMSBoxesBatched(xywh, scores, classes.astype(np.int32), 0.0, iou)
    return np.asarray(kept, dtype=np.int64).reshape(-1)


def _detections(labels: list[str], boxes: np.ndarray, scores: np.ndarray) -> tuple[Detection, ...]:
    rounded = np.round(boxes.astype(np.float64), 1).tolist()
    return tuple(
        Detection(label, round(float(score), 4), (box[0], box[1], box[2], box[3]))
        for label, box, score in zip(labels, rounded, scores)
    )


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.clip(boxes, 0.0, np.array([width, height, width, height], dtype=np.float32))


class ObjectDetector:
    """YOLOX-nano: 80 COCO classes, one image per run."""

    def __init__(self, model_dir: Path, spec: ModelSpec, score_threshold: float = 0.4, iou: float = 0.45) -> None:
        self.session = open_model(model_dir, spec)
        self.labels = [COMMON_NAMES.get(name, name) for name in read_labels(model_dir, spec)]
        self.version = spec.version
        self.input = spec.raw["input"]["name"]
        self.output = spec.raw["output"]["name"]
        self.score_threshold = score_threshold
        self.iou = iou
        self._grid, self._stride = _yolox_grid(OBJECT_SIZE, OBJECT_STRIDES)

    def detect(self, rgb: np.ndarray) -> tuple[Detection, ...]:
        rgb = as_rgb(rgb)
        tensor, ratio = letterbox(rgb, OBJECT_SIZE)
        raw = self.session.run([self.output], {self.input: tensor})[0][0]
        boxes, scores, classes = self.decode(raw)
        keep = nms(boxes, scores, self.iou, classes)
        boxes = _clip(boxes[keep] / ratio, rgb.shape[1], rgb.shape[0])
        return _detections([self.labels[c] for c in classes[keep]], boxes, scores[keep])

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw [3549, 85] rows -> candidate boxes (x1, y1, x2, y2 in input pixels), scores and
        classes, keeping each cell's best class when it clears the threshold (as YOLOX's demo)."""
        class_scores = raw[:, 5:] * raw[:, 4:5]
        classes = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(raw)), classes]
        # Strictly above, as SOURCES.md states its table ("conf > 0.4").
        rows = np.flatnonzero(scores > self.score_threshold)
        cells, stride = raw[rows], self._stride[rows]
        centre = (cells[:, :2] + self._grid[rows]) * stride
        half = np.exp(cells[:, 2:4]) * stride / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        return boxes, scores[rows], classes[rows]


def _yolox_grid(size: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each output row's cell (x, y) and stride, in the order the graph emits them."""
    grids, steps = [], []
    for stride in strides:
        cells = size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((cells * cells, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """RGB (H, W, 3) -> BGR float32 [1, 3, size, size] scaled into the top-left corner and padded
    with 114, and the ratio from image to input pixels."""
    height, width = rgb.shape[:2]
    ratio = min(size / height, size / width)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    canvas = np.full((size, size, 3), PAD, dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    # Channel flip (RGB -> BGR) and HWC -> CHW in one strided copy.
    chw = canvas[:, :, ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(chw, dtype=np.float32)[None], ratio


class FaceDetector:
    """UltraFace RFB-320: faces as boxes, one image per run."""

    label = "face"

    def __init__(self, model_dir: Path, spec: ModelSpec, score_threshold: float = 0.7, iou: float = 0.3) -> None:
        self.session = open_model(model_dir, spec)
        self.version = spec.version
        self.input = spec.raw["input"]["name"]
        self.outputs = list(spec.raw["output"]["names"])  # scores, boxes
        self.score_threshold = score_threshold
        self.iou = iou

    def detect(self, rgb: np.ndarray) -> tuple[Detection, ...]:
        rgb = as_rgb(rgb)
        height, width = rgb.shape[:2]
        scores, boxes = self.session.run(self.outputs, {self.input: face_input(rgb)})
        faces = scores[0, :, 1]
        rows = np.flatnonzero(faces > self.score_threshold)
        pixels = boxes[0, rows] * np.array([width, height, width, height], dtype=np.float32)
        keep = nms(pixels, faces[rows], self.iou)
        return _detections([self.label] * len(keep), _clip(pixels[keep], width, height), faces[rows][keep])


def face_input(rgb: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) -> float32 [1, 3, 240, 320], stretched, (x - 127) / 128."""
    # Bilinear as the model's reference code; INTER_AREA was 20x slower on non-integer ratios.
    small = cv2.resize(rgb, FACE_SIZE, interpolation=cv2.INTER_LINEAR)
    tensor = small.transpose(2, 0, 1).astype(np.float32)  # astype copies into CHW order
    tensor -= 127.0
    tensor /= 128.0
    return tensor[None]
