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
    """A video's frames are summarised per label; its sound follows as part <part>.audio."""
    assert main(["analyze", "video", str(SHARED_DATA / "video" / "bottle-detection.mp4")]) == 0
    found, sound = _lines(capsys)
    bottle = next(o for o in found["video"]["objects"] if o["label"] == "bottle")
    assert found["status"] == "ok" and bottle["frames"] > 10 and bottle["last_ms"] > bottle["first_ms"]
    assert sound["part_id"] == "part-0.audio" and sound["flags"] == ["no_audio_track"]


def test_analyze_audio_prints_the_jobs_findings_and_what_was_said(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Speech: its share and segments, sound classes, the transcript; with --rules its text
    findings follow, hits included."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {rule_id: said, version: 1, condition: 'fellow AND country'}\n")
    speech = SHARED_DATA / "audio" / "speech" / "jfk.flac"
    assert main(["analyze", "audio", str(speech), "--rules", str(rules)]) == 0
    found, *texts = _lines(capsys)
    assert found["kind"] == "audio" and found["status"] == "ok" and found["audio"]["speech_share"] > 0.5
    assert found["audio"]["sound_shares"]["speech"] > 0.5 and "country" in found["audio"]["transcript"]
    assert texts and texts[0]["part_id"] == "part-0.text"
    assert {"fellow", "country"} <= {hit["term"] for text in texts for hit in text["hits"]}


def test_identify_audio_names_the_clip_or_null(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An excerpt of a reference names it with its offset; speech names nothing."""
    import numpy as np
    import soundfile

    from udfs.audio import read_audio

    refs = tmp_path / "refs"
    refs.mkdir()
    music = SHARED_DATA / "audio" / "librosa"
    for name in ("Kevin_MacLeod_-_Vibe_Ace.ogg", "admiralbob77_-_Choice_-_Drum-bass.ogg"):
        shutil.copy(music / name, refs / name)
    excerpt = tmp_path / "excerpt.wav"
    soundfile.write(excerpt, read_audio(music / "admiralbob77_-_Choice_-_Drum-bass.ogg")[5 * 16000:13 * 16000], 16000)
    assert main(["identify", "audio", "--refs", str(refs), str(excerpt),
                 str(SHARED_DATA / "audio" / "speech" / "jfk.flac")]) == 0
    hit, miss = _lines(capsys)
    assert hit["match"] == "admiralbob77_-_Choice_-_Drum-bass.ogg" and np.isclose(hit["offset_s"], 5.0, atol=0.5)
    assert miss["match"] is None and miss["score"] == 0


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
