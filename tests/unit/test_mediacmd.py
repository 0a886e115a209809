"""The media commands as a user runs them: JSON lines out, precise errors, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from trackius.cli import main
from trackius.settings import SHARED_DATA

IMAGES = SHARED_DATA / "images"


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_analyze_image_prints_the_findings_the_job_computes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "image", str(IMAGES / "skimage" / "chelsea.png"), str(IMAGES / "darknet" / "person.jpg")]) == 0
    first, second = _lines(capsys)
    assert first["kind"] == "image" and first["status"] == "ok" and first["labels"][0]["label"] == "Egyptian cat"
    assert {"person", "dog", "horse"} <= {d["label"] for d in second["objects"]}


def test_analyze_image_with_rules_reads_its_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import ImageDraw, ImageFont

    sign = tmp_path / "sign.png"
    image = Image.new("RGB", (600, 200), "white")
    ImageDraw.Draw(image).text((20, 60), "FREE CRYPTO GIVEAWAY", fill="black", font=ImageFont.load_default(size=44))
    image.save(sign)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - rule_id: giveaway\n    version: 1\n    condition: giveaway AND crypto\n")
    assert main(["analyze", "image", str(sign), "--rules", str(rules)]) == 0
    media, text = _lines(capsys)
    assert "ocr_pending" in media["flags"]
    assert text["part_id"] == "part-0.text" and {h["term"] for h in text["hits"]} == {"giveaway", "crypto"}


def test_analyze_video_reports_objects_over_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "video", str(SHARED_DATA / "video" / "bottle-detection.mp4")]) == 0
    (found,) = _lines(capsys)
    bottle = next(o for o in found["video"]["objects"] if o["label"] == "bottle")
    assert found["status"] == "ok" and bottle["frames"] > 10 and bottle["last_ms"] > bottle["first_ms"]


def test_analyze_missing_file_is_a_precise_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "image", "/nonexistent/picture.jpg"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_identify_names_the_reference_or_null(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("zidane.jpg", "bus.jpg"):
        shutil.copy(IMAGES / "ultralytics" / name, refs / name)
    copy = tmp_path / "copy.jpg"
    Image.open(IMAGES / "ultralytics" / "zidane.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize(
        (640, 360)).save(copy, quality=30)
    assert main(["identify", "image", "--refs", str(refs), str(copy), str(IMAGES / "skimage" / "coffee.png")]) == 0
    hit, miss = _lines(capsys)
    assert hit["file"].endswith("copy.jpg") and hit["match"] == "zidane.jpg"
    assert miss["match"] is None and set(miss) >= {"file", "match", "distance"}


def test_eval_image_id_reports_recall_and_false_positives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refs, negatives = tmp_path / "refs", tmp_path / "negatives"
    refs.mkdir()
    negatives.mkdir()
    shutil.copy(IMAGES / "skimage" / "astronaut.png", refs)
    shutil.copy(IMAGES / "darknet" / "giraffe.jpg", refs)
    shutil.copy(IMAGES / "skimage" / "coffee.png", negatives)
    shutil.copy(IMAGES / "darknet" / "kite.jpg", negatives)
    assert main(["eval", "image-id", "--refs", str(refs), "--negatives", str(negatives), "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    recall, false_positives = report["recall"], report["false_positive_rate"]
    assert recall["n"] >= 2 * 8 and recall["value"] >= 0.9 and recall["ci95"][0] <= recall["value"] <= recall["ci95"][1]
    assert false_positives["n"] >= 2 and false_positives["value"] == 0.0
