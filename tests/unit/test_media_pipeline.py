"""The media pipeline end to end without a JVM: real files served by a local HTTP server, real
models, real video; every bad input becomes the part's findings and the others are unharmed."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from schemas.content import MediaPart
from schemas.media import MediaFindings
from tests.media_server import serve
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.imaging import encode_jpeg
from udfs.media import Fetcher
from udfs.media_pipeline import MediaPipeline, MediaText, PartRequest, PipelineOptions, shown_uri
from udfs.visual import VisualAnalyzer

IMAGES = SHARED_DATA / "images"
BUS = (IMAGES / "ultralytics" / "bus.jpg").read_bytes()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve({"/bus.jpg": ("image/jpeg", BUS),
                "/page.jpg": ("image/jpeg", b"<!doctype html><html><body>hello</body></html>"),
                "/half.jpg": ("image/jpeg", BUS[: len(BUS) // 2])}) as url:
        yield url


@pytest.fixture(scope="module")
def analyzer() -> VisualAnalyzer:
    return VisualAnalyzer.create(SHARED_DATA / "models", REPO_ROOT / "models" / "vision" / "manifest.json")


def _run(analyzer: VisualAnalyzer, parts: list[MediaPart], ocr: object = None) -> list[object]:
    pipeline = MediaPipeline(Fetcher(timeout_s=3.0), analyzer, ocr, PipelineOptions(progress_frames=5))
    pipeline.ocr_wanted = ocr is not None
    try:
        return list(pipeline.run([PartRequest("shard", "x:1", part, 123) for part in parts], timeout_s=120))
    finally:
        pipeline.close()


def _final(results: list[object], part_id: str) -> MediaFindings:
    (found,) = [r for r in results if isinstance(r, MediaFindings) and r.part_id == part_id and r.status != "partial"]
    return found


def test_good_and_bad_parts_of_one_post(server: str, analyzer: VisualAnalyzer) -> None:
    results = _run(analyzer, [
        MediaPart("ok", "image", f"{server}/bus.jpg"),
        MediaPart("html", "image", f"{server}/page.jpg"),
        MediaPart("missing", "image", f"{server}/gone.jpg"),
        MediaPart("cut", "image", f"{server}/half.jpg"),
    ])
    bus = _final(results, "ok")
    assert bus.status == "ok" and bus.failure is None
    assert {"bus", "person"} <= {d.label for d in bus.objects}
    assert len(bus.faces) == 2 and bus.labels and (bus.width, bus.height) == (810, 1080)
    assert bus.collected_at == 123 and set(bus.models) == {"objects", "faces", "scenes"}
    assert {"fetch", "decode", "analyse"} <= set(bus.timings_ms)
    assert (_final(results, "html").failure.stage, _final(results, "html").failure.code) == ("fetch", "not_media")
    missing = _final(results, "missing").failure
    assert (missing.stage, missing.code) == ("fetch", "http_status") and "404" in missing.message
    assert (_final(results, "cut").failure.stage, _final(results, "cut").failure.code) == ("decode", "corrupt")


def test_boxes_are_in_published_pixels(analyzer: VisualAnalyzer) -> None:
    """A large image is downscaled for the models; its boxes still refer to the original."""
    big = np.asarray(Image.open(IMAGES / "ultralytics" / "bus.jpg").convert("RGB").resize((1620, 2160)))
    uri = "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(big, 90)).decode()
    (small_bus,) = [d for d in _final(_run(analyzer, [MediaPart("a", "image", uri)]), "a").objects if d.label == "bus"]
    (bus,) = [d for d in analyzer.analyse_images([np.asarray(Image.open(IMAGES / "ultralytics" / "bus.jpg"))])[0].objects
              if d.label == "bus"]
    assert np.allclose(np.array(small_bus.box) / 2, bus.box, atol=25)


def test_video_reports_progress_then_a_summary(analyzer: VisualAnalyzer) -> None:
    uri = (SHARED_DATA / "video" / "bottle-detection.mp4").as_uri()
    results = _run(analyzer, [MediaPart("v", "video", uri)])
    partial = [r for r in results if isinstance(r, MediaFindings) and r.status == "partial"]
    final = _final(results, "v")
    assert partial and partial[0].video.frames_sampled < final.video.frames_sampled
    assert final.video.frames_sampled >= 30 and final.video.analysed_ms > 30_000
    bottle = next(o for o in final.video.objects if o.label == "bottle")
    assert bottle.peak_score > 0.8 and bottle.frames > 10 and bottle.first_ms <= bottle.last_ms


def test_video_that_is_not_a_video(tmp_path: Path, analyzer: VisualAnalyzer) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    failure = _final(_run(analyzer, [MediaPart("v", "video", fake.as_uri())]), "v").failure
    assert failure.stage == "decode" and failure.code == "no_frames"


def test_text_in_an_image_is_read_when_wanted(analyzer: VisualAnalyzer) -> None:
    from udfs.ocr import create_ocr

    ocr = create_ocr(REPO_ROOT / "models" / "ocr")
    assert ocr is not None, "scripts/setup.sh fetches the OCR models"
    image = Image.new("RGB", (640, 200), "white")
    ImageDraw.Draw(image).text((20, 60), "BITCOIN TO THE MOON", fill="black", font=ImageFont.load_default(size=44))
    uri = "data:image/png;base64," + base64.b64encode(_png(image)).decode()
    results = _run(analyzer, [MediaPart("meme", "image", uri)], ocr)
    (text,) = [r for r in results if isinstance(r, MediaText)]
    assert text.part_id == "meme" and "BITCOIN" in text.text.upper()
    assert "ocr_pending" in next(r for r in results if isinstance(r, MediaFindings)).flags


def test_extreme_shapes_are_analysed_within_bounds(analyzer: VisualAnalyzer) -> None:
    """A 1-pixel banner, a tall strip and a single pixel: findings, not a 300,000-pixel resize."""
    shapes = [(1, 1280, 3), (1280, 7, 3), (1, 1, 3)]
    results = analyzer.analyse_images([np.full(shape, 200, np.uint8) for shape in shapes])
    assert len(results) == 3 and all(result.analyse_ms < 2000 for result in results)


def test_data_uris_are_not_repeated_in_findings() -> None:
    shown = shown_uri("data:image/png;base64," + "A" * 100_000)
    assert shown.startswith("data:image/png;base64,") and len(shown) < 120


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
