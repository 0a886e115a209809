"""udfs/ocr.py: text read from generated memes and screenshots with the real PP-OCRv4 models,
nothing read from text-free photos, bounded work on large images, and the missing-model path.

The models come from scripts/fetch-ocr-models.sh into models/ocr (setup runs it)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from schemas.errors import MediaError
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.ocr import DET_MODEL, DET_PIXELS, REC_MODEL, PaddleOcr, charset, create_ocr, ctc_greedy
from udfs.onnx import Session

MODEL_DIR = REPO_ROOT / "models" / "ocr"


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    # scripts/setup.sh fetches them; a test run without them would prove nothing.
    assert (MODEL_DIR / DET_MODEL).is_file() and (MODEL_DIR / REC_MODEL).is_file(), \
        f"OCR models not fetched: run scripts/fetch-ocr-models.sh {MODEL_DIR}"
    return {"det": (MODEL_DIR / DET_MODEL).read_bytes(),
            "rec": (MODEL_DIR / REC_MODEL).read_bytes()}


class Recording:
    """A real Session that also keeps the shape of every input it was given."""

    def __init__(self, model: bytes) -> None:
        self._session, self.shapes = Session(model), []

    def run(self, outputs, feeds):
        self.shapes.append(feeds["x"].shape)
        return self._session.run(outputs, feeds)


@pytest.fixture(scope="module")
def engine(models):
    return PaddleOcr(Recording(models["det"]), Recording(models["rec"]), charset(models["rec"]))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def found(expected: str, read: str) -> float:
    got = words(read)
    return sum(word in got for word in words(expected)) / len(words(expected))


def photo(name: str) -> np.ndarray:
    path = next((SHARED_DATA / "images").glob(f"*/{name}"))
    return np.asarray(Image.open(path).convert("RGB"))


def draw_lines(image: Image.Image, lines: list[str], size: int, at: tuple[int, int],
               **style) -> Image.Image:
    font, draw = ImageFont.load_default(size=size), ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((at[0], at[1] + int(i * size * 1.5)), line, font=font, **style)
    return image


SCREEN = ["Flash sale ends tonight at midnight", "Reply with your order number please",
          "Customer support is closed on Sunday"]


def test_screenshot_lines_are_read_in_order(engine):
    """Dark text on white: the words are read and the lines come top to bottom, one per row."""
    image = draw_lines(Image.new("RGB", (560, 140), "white"), SCREEN, 20, (16, 16),
                       fill=(30, 30, 35))
    result = engine.read(np.asarray(image))
    assert found(" ".join(SCREEN), result.text) >= 0.85, result.text
    assert len(result.lines) == 3 and result.text.count("\n") == 2
    assert "flash" in result.lines[0].text.lower() and "sunday" in result.lines[2].text.lower()
    assert all(0.6 <= line.confidence <= 1.0 for line in result.lines)
    tops = [line.box[1] for line in result.lines]
    assert tops == sorted(tops)
    assert all(line.box[2] <= 560 and line.box[3] <= 140 for line in result.lines)


def test_meme_caption_on_a_photo_is_read(engine):
    """White capitals with a black outline over a real photo, the classic meme style."""
    caption = ["WHEN THE BUILD", "PASSES ON FRIDAY"]
    image = draw_lines(Image.fromarray(photo("astronaut.png")), caption, 40, (40, 20),
                       fill="white", stroke_width=3, stroke_fill="black")
    result = engine.read(np.asarray(image))
    assert found(" ".join(caption), result.text) >= 0.8, result.text


def test_small_text_is_read(engine):
    """11 px text, the size of a caption under a screenshot, is still mostly read."""
    line = "Meet the new phone from our partners today"
    image = draw_lines(Image.new("RGB", (300, 40), "white"), [line], 11, (8, 12), fill="black")
    assert found(line, engine.read(np.asarray(image)).text) >= 0.7


def test_photos_without_text_read_little(engine):
    """Real photos with no text in them give (almost) nothing: false text would trigger rules."""
    names = ("giraffe.jpg", "camera.png", "chelsea.png", "coffee.png", "person.jpg", "rocket.jpg")
    texts = [engine.read(photo(name)).text for name in names]
    assert sum(len(text) for text in texts) <= 1, texts


def test_real_signage_in_a_photo_is_read(engine):
    """The destination sign of the bus in bus.jpg ("cero emisiones") is real text, and is read."""
    read = words(engine.read(photo("bus.jpg")).text)
    assert "cero" in read and "emisiones" in read, read


def test_blank_and_empty_images_read_nothing(engine):
    """A uniform image and a zero-sized one give exactly the empty result."""
    assert engine.read(np.full((300, 400, 3), 255, np.uint8)).text == ""
    assert engine.read(np.zeros((0, 0, 3), np.uint8)).lines == ()


def test_large_image_is_bounded_and_boxes_stay_in_its_pixels(engine):
    """A 6000 x 4000 image: the detector sees at most its pixel budget, the recogniser 48 px
    lines, and the boxes come back in the caller's pixels."""
    image = draw_lines(Image.new("RGB", (6000, 4000), "white"), ["HELLO WORLD"], 300, (2000, 2500),
                       fill="black")
    engine._det.shapes.clear()
    engine._rec.shapes.clear()
    result = engine.read(np.asarray(image))
    assert found("HELLO WORLD", result.text) == 1.0, result.text
    (det_shape,) = engine._det.shapes
    assert det_shape[2] * det_shape[3] <= DET_PIXELS * 1.15
    assert all(shape[2] == 48 for shape in engine._rec.shapes)
    x1, y1, x2, y2 = result.lines[0].box
    assert 1800 < x1 < 2200 and 2400 < y1 < 2700 and x2 > 3500 and y2 < 3000


def test_grey_and_rgba_inputs_are_accepted_and_other_pixels_refused(engine):
    """2-D grey and 4-channel images are read; 16-bit pixels raise MediaError('unsupported')."""
    image = draw_lines(Image.new("L", (360, 60), 255), ["Grey text works"], 22, (10, 14), fill=0)
    grey = np.asarray(image)
    assert found("grey text works", engine.read(grey).text) >= 0.6
    rgba = np.dstack([np.repeat(grey[:, :, None], 3, axis=2), np.full(grey.shape, 255, np.uint8)])
    assert engine.read(rgba).text == engine.read(grey).text
    with pytest.raises(MediaError) as info:
        engine.read(np.zeros((10, 10, 3), np.uint16))
    assert info.value.code == "unsupported"


def test_ctc_greedy_collapses_repeats_and_reads_spaces_from_blank_runs():
    """Repeats merge, blanks split, and a blank run where space has a share becomes a space."""
    chars = ["", "a", "b", " "]

    def steps(*rows):
        return np.array(rows, np.float32)

    probs = steps([0, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0],
                  [0.9, 0, 0, 0.1], [0, 0, 1, 0])
    assert ctc_greedy(probs, chars) == ("aa b", pytest.approx(1.0))
    quiet = probs.copy()
    quiet[4] = [1, 0, 0, 0]
    assert ctc_greedy(quiet, chars)[0] == "aab"
    assert ctc_greedy(steps([1, 0, 0, 0]), chars) == ("", 0.0)


def test_missing_models_give_none_and_one_warning(tmp_path, caplog):
    """No model directory, or one without the models: None and one warning saying how to fetch."""
    with caplog.at_level(logging.WARNING, logger="udfs.ocr"):
        assert create_ocr(tmp_path / "nowhere") is None
    (record,) = caplog.records
    assert DET_MODEL in record.getMessage() and "fetch-ocr-models.sh" in record.getMessage()
    caplog.clear()
    (tmp_path / DET_MODEL).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="udfs.ocr"):
        assert create_ocr(tmp_path) is None
        assert create_ocr(None) is None
    assert len(caplog.records) == 2 and REC_MODEL in caplog.records[0].getMessage()
