"""Text in images (memes, screenshots) for the text rules: an OCR engine behind a tiny interface.

The engine is PaddleOCR's PP-OCRv4 pair (a DB text detector and a CRNN recogniser, ONNX files
taken out of the pinned `rapidocr-onnxruntime` wheel by scripts/fetch-ocr-models.sh), run through
udfs/onnx.py with our own pre- and post-processing. It was chosen over Debian's Tesseract 5.3 on
bench/ocr.py's figures (one core): word recall on meme captions (white outlined capitals over a
photo) 0.98 against 0.13, on 11 px text 0.93 against 0.48, on screenshots 0.99 against 0.90;
both read nothing from the text-free photos, and only PP-OCR read the real sign on the bus photo.
The detector doubles as the "is there any text" check, so a text-free photo (most images) costs
one pass: p50 84 ms against Tesseract's 188 ms. Images with text cost more (p50 over the whole
set 269 ms against 175 ms, p95 693 against 450), and it takes ~280 MB of resident memory and a
15 MB download at setup instead of a Debian package.

    engine = create_ocr(model_dir)           # None, with one warning, when the models are missing
    result = engine.read(rgb)                # uint8 H x W x 3
    result.text                              # lines in reading order, joined with "\\n"
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from schemas.errors import MediaError, ModelError
from udfs.onnx import Session

log = logging.getLogger(__name__)

DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
FETCH_HINT = "run scripts/fetch-ocr-models.sh <model_dir>"

# Budgets in pixels rather than sides, so that a tall phone screenshot keeps readable text.
MAX_PIXELS = 2_400_000  # read() first downscales to this: bounds time and memory (~1080 x 2220)
DET_PIXELS = 640_000  # the detector's input (~800 x 800); the recogniser crops from the larger


def _fit(shape: tuple[int, ...], pixels: int) -> float:
    return min(1.0, (pixels / (shape[0] * shape[1])) ** 0.5)


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float  # 0..1
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in the pixels of the image given to read()


@dataclass(frozen=True)
class OcrResult:
    text: str  # the lines' texts in reading order, joined with "\n"; "" when none
    lines: tuple[OcrLine, ...]

    @classmethod
    def of(cls, lines: list[OcrLine]) -> OcrResult:
        return cls("\n".join(line.text for line in lines), tuple(lines))


EMPTY = OcrResult("", ())


class OcrEngine(Protocol):
    name: str

    def read(self, rgb: np.ndarray) -> OcrResult: ...


def create_ocr(model_dir: Path | None = None, *, min_confidence: float = 0.6,
               max_pixels: int = MAX_PIXELS) -> OcrEngine | None:
    """The PP-OCRv4 engine reading its two models from `model_dir`, or None (one warning naming
    the missing file and how to get it) when they are not there."""
    if model_dir is None:
        log.warning("OCR disabled: no OCR model directory configured (%s)", FETCH_HINT)
        return None
    missing = [name for name in (DET_MODEL, REC_MODEL) if not (model_dir / name).is_file()]
    if missing:
        log.warning("OCR disabled: %s missing from %s (%s)", ", ".join(missing), model_dir,
                    FETCH_HINT)
        return None
    rec = (model_dir / REC_MODEL).read_bytes()
    return PaddleOcr(Session((model_dir / DET_MODEL).read_bytes()), Session(rec), charset(rec),
                     min_confidence=min_confidence, max_pixels=max_pixels)


def rgb_of(image: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 from grey, RGB or RGBA input."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise MediaError("unsupported", f"expected an H x W (x 3|4) image, got shape {image.shape}")


class PaddleOcr:
    """DB detection, then CTC recognition of each detected line (greedy decoding)."""

    name = "ppocr-v4"

    def __init__(self, det: Session, rec: Session, chars: list[str], *, min_confidence: float = 0.6,
                 max_pixels: int = MAX_PIXELS, det_pixels: int = DET_PIXELS,
                 rec_batch: int = 8) -> None:
        self._det, self._rec = det, rec
        self._charset = chars
        # 0.6: on bench/ocr.py's set every false line read in photos scored below 0.55 (single
        # letters, CJK from textures) and every line of drawn text above 0.8
        self.min_confidence = min_confidence
        self.max_pixels, self.det_pixels = max_pixels, det_pixels
        self.rec_batch = rec_batch

    def read(self, rgb: np.ndarray) -> OcrResult:
        image = rgb_of(rgb)
        if image.dtype != np.uint8:
            raise MediaError("unsupported", f"expected 8-bit pixels, got {image.dtype}")
        if image.size == 0:
            return EMPTY
        scale = _fit(image.shape, self.max_pixels)
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # Paddle's models were trained on BGR
        quads = self.detect(bgr)
        if not quads:
            return EMPTY
        texts = self.recognise([crop(bgr, quad) for quad in quads])
        height, width = rgb.shape[:2]
        lines = [OcrLine(text, conf, _box(quad, scale, width, height))
                 for quad, (text, conf) in zip(quads, texts)
                 if conf >= self.min_confidence and _wordlike(text)]
        return OcrResult.of(rows(lines))

    def detect(self, bgr: np.ndarray) -> list[np.ndarray]:
        """Text-line quadrilaterals (4 x 2 float32 in `bgr`'s pixels) from the DB map."""
        h, w = bgr.shape[:2]
        ratio = _fit(bgr.shape, self.det_pixels)
        dh, dw = (max(32, round(side * ratio / 32) * 32) for side in (h, w))
        x = (cv2.resize(bgr, (dw, dh)).astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        prob = self._det.run([], {"x": x})[0][0, 0]
        return [(quad * (w / dw, h / dh)).astype(np.float32) for quad in db_boxes(prob)]

    def recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text and mean character confidence of each crop, batched by similar width."""
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), self.rec_batch):
            batch = order[start:start + self.rec_batch]
            probs = self._rec.run([], {"x": rec_input([crops[i] for i in batch])})[0]
            for i, p in zip(batch, probs):
                out[i] = ctc_greedy(p, self._charset)
        return out


def _wordlike(text: str) -> bool:
    """Two letters or digits at least: a lone glyph is nearly always texture; no rule needs it."""
    return sum(ch.isalnum() for ch in text) >= 2


def charset(rec_model: bytes) -> list[str]:
    """The recogniser's classes: CTC blank, the dictionary stored in the model, then space."""
    import onnx

    try:
        meta = {p.key: p.value for p in onnx.load_model_from_string(rec_model).metadata_props}
    except Exception as exc:  # protobuf's DecodeError and friends share no useful base class
        raise ModelError(f"the OCR recognition model cannot be parsed: {exc}") from exc
    chars = meta.get("character")
    if not chars:
        raise ModelError("the OCR recognition model has no 'character' dictionary in its metadata")
    return ["", *chars.splitlines(), " "]


BIN_THRESHOLD = 0.3  # Paddle's defaults for PP-OCRv4 detection (0.6 and 0.7 for the box
BOX_THRESHOLD = 0.5  # threshold changed nothing on bench/ocr.py's set)
UNCLIP_RATIO = 1.6
MIN_SIDE = 3


def db_boxes(prob: np.ndarray, max_boxes: int = 200) -> list[np.ndarray]:
    """DB post-processing: threshold, contours, score each rectangle by its mean probability,
    grow it (the model predicts shrunk text kernels) and return its corners."""
    bitmap = cv2.dilate((prob > BIN_THRESHOLD).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads = []
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:max_boxes]:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < MIN_SIDE or _mean_inside(prob, contour) < BOX_THRESHOLD:
            continue
        grow = rw * rh * UNCLIP_RATIO / (2 * (rw + rh))  # Paddle's unclip distance
        grown = ((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle)
        if min(rw, rh) + 2 * grow < MIN_SIDE + 2:
            continue
        quads.append(_ordered(cv2.boxPoints(grown)))
    return quads


def _mean_inside(prob: np.ndarray, contour: np.ndarray) -> float:
    x, y, w, h = cv2.boundingRect(contour)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [contour.reshape(-1, 2) - (x, y)], 1)
    return float(cv2.mean(prob[y:y + h, x:x + w], mask)[0])


def _ordered(points: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left."""
    by_x = points[np.argsort(points[:, 0])]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], np.float32)


def crop(bgr: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad warped upright; tall crops are turned (vertical text lines)."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    warped = cv2.warpPerspective(bgr, cv2.getPerspectiveTransform(quad, target), (width, height),
                                 borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(warped) if height >= 1.5 * width else warped


REC_HEIGHT = 48
REC_MAX_WIDTH = 1600  # a line wider than 33 x its height is squeezed rather than left unbounded


def rec_input(crops: list[np.ndarray]) -> np.ndarray:
    """Crops resized to height 48 keeping their aspect, normalised, right-padded with zeros."""
    widths = [min(REC_MAX_WIDTH, max(8, int(np.ceil(REC_HEIGHT * c.shape[1] / c.shape[0]))))
              for c in crops]
    batch = np.zeros((len(crops), 3, REC_HEIGHT, max(max(widths), 320)), np.float32)
    for i, (c, w) in enumerate(zip(crops, widths)):
        # cubic, because the model wants sharp strokes: bilinear upscaling of small text made
        # it run words together (word recall on 18 px screenshots 0.09 bilinear, 0.71 cubic)
        resized = cv2.resize(c, (w, REC_HEIGHT), interpolation=cv2.INTER_CUBIC)
        resized = resized.astype(np.float32) / 127.5 - 1.0
        batch[i, :, :, :w] = resized.transpose(2, 0, 1)
    return batch


SPACE_HINT = 0.01


def ctc_greedy(probs: np.ndarray, chars: list[str]) -> tuple[str, float]:
    """Best path: argmax per step, repeats collapsed, blanks dropped; confidence is the mean
    probability of the kept characters.

    This model (trained mostly on Chinese) rarely lets the space class win a step, so Latin
    words run together; but between two words the space class keeps a visible share of the
    blank steps, and inside a word it has next to none. A blank run whose steps give space at
    least SPACE_HINT becomes a space. 0.01 was best on bench/ocr.py's set: word recall without
    the rule 0.60 (memes) / 0.67 (small text), with it 0.98 / 0.93; 0.003 starts splitting
    words (0.93 / 0.91) and 0.08 joins more of them (0.94 / 0.89)."""
    best = probs.argmax(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    steps = np.flatnonzero(keep)
    if steps.size == 0:
        return "", 0.0
    space = len(chars) - 1
    text = [chars[best[steps[0]]]]
    for prev, step in itertools.pairwise(steps):
        gap = probs[prev + 1:step, space]
        if gap.size and gap.max() >= SPACE_HINT and best[step] != space and best[prev] != space:
            text.append(" ")
        text.append(chars[best[step]])
    return "".join(text), float(probs[steps, best[steps]].mean())


def _box(quad: np.ndarray, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The quad's bounding box in the caller's pixels, clipped to the image (unclip overshoots)."""
    x1, y1 = quad.min(axis=0) / scale
    x2, y2 = quad.max(axis=0) / scale
    return (int(max(0, x1)), int(max(0, y1)),
            int(min(width, round(x2))), int(min(height, round(y2))))


def rows(lines: list[OcrLine]) -> list[OcrLine]:
    """Reading order, top to bottom: a piece joins the current row when its vertical middle lies
    within the height of every piece already in it; a row reads left to right."""
    out: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        middle = (line.box[1] + line.box[3]) / 2
        row = out[-1] if out else None
        if row and all(other.box[1] <= middle <= other.box[3] for other in row):
            row.append(line)
        else:
            out.append([line])
    return [_join(sorted(row, key=lambda ln: ln.box[0])) for row in out]


def _join(row: list[OcrLine]) -> OcrLine:
    if len(row) == 1:
        return row[0]
    box = (min(ln.box[0] for ln in row), min(ln.box[1] for ln in row),
           max(ln.box[2] for ln in row), max(ln.box[3] for ln in row))
    return OcrLine(" ".join(ln.text for ln in row), min(ln.confidence for ln in row), box)
