"""The vision models on the shared images: YOLOX-nano objects, UltraFace faces and MobileNetV2
scenes give the results shared/data/SOURCES.md records, boxes are in image pixels, MobileNetV2
batches without changing a number, and a missing or altered model file is a named ModelError."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from schemas.errors import ModelError
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.detectors import Detection, FaceDetector, ObjectDetector
from udfs.models import ModelSpec, read_manifest
from udfs.scenes import SceneModel

MODELS = SHARED_DATA / "models"
IMAGES = SHARED_DATA / "images"
PATHS = {path.stem: path for path in IMAGES.rglob("*") if path.suffix in {".png", ".jpg"}}

# SOURCES.md section 5 ("COCO objects (YOLOX-nano, conf > 0.4)"), in COCO's common spelling.
OBJECTS = {
    "astronaut": {"person"}, "camera": {"person"}, "chelsea": {"cat"}, "coffee": {"cup", "dining table"},
    "rocket": set(), "giraffe": {"giraffe", "zebra"}, "person": {"person", "dog", "horse"},
    "kite": {"kite", "person"}, "bus": {"bus", "person"}, "zidane": {"person", "tie"},
}
FACES = {"astronaut": 1, "zidane": 2, "bus": 2, "coffee": 0}


def rgb(name: str) -> np.ndarray:
    with Image.open(PATHS[name]) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def specs() -> dict[str, ModelSpec]:
    return read_manifest(REPO_ROOT / "models" / "vision" / "manifest.json")


@pytest.fixture(scope="module")
def objects(specs: dict[str, ModelSpec]) -> ObjectDetector:
    return ObjectDetector(MODELS, specs["objects"])


@pytest.fixture(scope="module")
def faces(specs: dict[str, ModelSpec]) -> FaceDetector:
    return FaceDetector(MODELS, specs["faces"])


@pytest.fixture(scope="module")
def scenes(specs: dict[str, ModelSpec]) -> SceneModel:
    return SceneModel(MODELS, specs["scenes"])


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_objects_match_the_sources_table(objects: ObjectDetector, name: str) -> None:
    """YOLOX-nano finds exactly the label set SOURCES.md records for each shared image."""
    found = objects.detect(rgb(name))
    assert {d.label for d in found} == OBJECTS[name]
    assert all(d.score > 0.4 for d in found)


@pytest.mark.parametrize("name", sorted(FACES))
def test_faces_match_the_sources_table(faces: FaceDetector, name: str) -> None:
    """UltraFace finds the number of faces SOURCES.md records (astronaut 1, zidane 2, bus 2, coffee 0)."""
    found = faces.detect(rgb(name))
    assert len(found) == FACES[name]
    assert all(d.label == "face" and d.score > 0.7 for d in found)


def test_detections_are_rounded_and_inside_the_image(objects: ObjectDetector) -> None:
    """Scores carry 4 digits, boxes 1 decimal, ordered corners clipped to the image."""
    image = rgb("kite")
    height, width = image.shape[:2]
    for d in objects.detect(image):
        assert isinstance(d, Detection) and d.score == round(d.score, 4)
        assert all(v == round(v, 1) for v in d.box)
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_grayscale_arrays_are_accepted(objects: ObjectDetector, faces: FaceDetector) -> None:
    """A 2-D grayscale array (camera.png as decoded) gives the same detections as its RGB copy."""
    with Image.open(PATHS["camera"]) as image:
        gray = np.asarray(image)
    assert gray.ndim == 2
    assert objects.detect(gray) == objects.detect(rgb("camera"))
    assert faces.detect(gray) == faces.detect(rgb("camera"))


def test_zidane_faces_lie_inside_the_person_boxes(objects: ObjectDetector, faces: FaceDetector) -> None:
    """Both detectors answer in the same image pixels: each face sits in a person box."""
    image = rgb("zidane")
    people = [d.box for d in objects.detect(image) if d.label == "person"]
    for face in faces.detect(image):
        centre = ((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2)
        assert any(p[0] <= centre[0] <= p[2] and p[1] <= centre[1] <= p[3] for p in people), face
        assert any(_overlap(face.box, p) > 0.9 for p in people), face


def _overlap(inner: tuple[float, ...], outer: tuple[float, ...]) -> float:
    """The fraction of `inner`'s area that lies inside `outer`."""
    w = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    h = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    return w * h / ((inner[2] - inner[0]) * (inner[3] - inner[1]))


@pytest.mark.parametrize("detector", ["objects", "faces"])
def test_a_downscaled_copy_gives_proportional_boxes(request: pytest.FixtureRequest, detector: str) -> None:
    """Halving bus.jpg halves every box (within 3% of the image size)."""
    model = request.getfixturevalue(detector)
    image = rgb("bus")
    half = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    full, small = model.detect(image), model.detect(half)
    assert len(small) == len(full) > 0
    tolerance = 0.03 * max(half.shape)
    for d in small:
        best = min(np.abs(np.array(f.box) / 2 - d.box).max() for f in full if f.label == d.label)
        assert best < tolerance, d


def test_mobilenet_top_labels(scenes: SceneModel) -> None:
    """MobileNetV2 says Egyptian cat, espresso (> 0.9) and missile, as SOURCES.md records."""
    output = scenes.forward([rgb("chelsea"), rgb("coffee"), rgb("rocket")])
    cat, coffee, rocket = (labels[0] for labels in scenes.top_labels(output.logits))
    assert cat.label == "Egyptian cat"
    assert coffee.label == "espresso" and coffee.score > 0.9
    assert rocket.label == "missile"


def test_mobilenet_batches_equal_single_runs(scenes: SceneModel) -> None:
    """A batch of different images gives exactly the logits and features of one run per image."""
    names = ["chelsea", "coffee", "rocket", "bus", "zidane", "camera"]
    images = [rgb(name) for name in names]
    batched = scenes.forward(images)
    single = [scenes.forward([image]) for image in images]
    assert batched.logits.shape == (len(names), 1000)
    assert batched.features.shape == (len(names), 1280, 7, 7)
    np.testing.assert_array_equal(batched.logits, np.concatenate([s.logits for s in single]))
    np.testing.assert_array_equal(batched.features, np.concatenate([s.features for s in single]))
    assert len({row.argmax() for row in batched.logits}) > 1  # the images really differ


def test_exactly_one_onnxruntime_distribution() -> None:
    """Only one onnxruntime wheel is installed (two would overwrite each other's files)."""
    names = {(dist.metadata["Name"] or "").lower() for dist in importlib.metadata.distributions()}
    assert len([name for name in names if name.startswith("onnxruntime")]) == 1, names


def test_missing_model_file_names_the_file(tmp_path: Path, specs: dict[str, ModelSpec]) -> None:
    """An absent model file raises ModelError naming its path."""
    with pytest.raises(ModelError, match="ultraface_version-RFB-320.onnx") as caught:
        FaceDetector(tmp_path, specs["faces"])
    assert str(tmp_path) in str(caught.value) and "missing" in str(caught.value)


def test_altered_model_file_names_the_file(tmp_path: Path, specs: dict[str, ModelSpec]) -> None:
    """A truncated copy of the model fails its sha256 check with a ModelError naming the file."""
    spec = specs["objects"]
    for relative in (spec.file, spec.labels):
        assert relative is not None
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODELS / relative, tmp_path / relative)
    ObjectDetector(tmp_path, spec)  # the intact copy loads
    data = (tmp_path / spec.file).read_bytes()
    (tmp_path / spec.file).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="yolox_nano.onnx.*sha256"):
        ObjectDetector(tmp_path, spec)
