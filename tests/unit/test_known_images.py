"""Known-image detection: hashes, signatures, the index, distortions and the evaluate/identify commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trackius.imageid import evaluate, identify, open_model, video_frames, wilson
from trackius.settings import SHARED_DATA
from udfs.distort import KINDS, crop, distortions
from udfs.known_images import (
    HASH_MAX,
    ImageIndex,
    ImageSignature,
    phashes,
    sign_images,
    signature_from_bytes,
    signature_to_bytes,
)

MODELS = SHARED_DATA / "models"
REFS = ("skimage/astronaut.png", "skimage/chelsea.png", "skimage/coffee.png", "darknet/giraffe.jpg")
OTHERS = ("ultralytics/zidane.jpg", "darknet/person.jpg", "skimage/rocket.jpg")


def load(relative: str, longest: int = 512) -> np.ndarray:
    """A shared image, shrunk so the suite stays fast."""
    image = Image.open(SHARED_DATA / "images" / relative).convert("RGB")
    image.thumbnail((longest, longest))
    return np.asarray(image)


def distance(a: int | None, b: int | None) -> int:
    assert a is not None and b is not None
    return (a ^ b).bit_count()


def reencode(rgb: np.ndarray, scale: float, quality: int) -> np.ndarray:
    import io

    image = Image.fromarray(rgb)
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture(scope="module")
def model():
    return open_model(MODELS)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {name: load(name) for name in REFS + OTHERS}


@pytest.fixture(scope="module")
def index(model, images) -> ImageIndex:
    built = ImageIndex()
    for name, signature in zip(REFS, sign_images(model, [images[n] for n in REFS], reference=True)):
        built.add(name, Path(name).name, signature)
    return built


def test_identical_image_has_distance_zero(images):
    """The same pixels give the same hash."""
    first, second = phashes(images[REFS[0]]), phashes(images[REFS[0]].copy())
    assert first == second and distance(first[0], second[0]) == 0


def test_resize_and_jpeg_keep_the_hash_close(images):
    """A half-size JPEG at quality 30 stays well inside the match radius."""
    for name in REFS:
        original, copy = phashes(images[name])[0], phashes(reencode(images[name], 0.5, 30))[0]
        assert distance(original, copy) <= HASH_MAX // 2, name


def test_unrelated_images_are_far_apart(images):
    """Different images differ in many bits, mirror included."""
    names = REFS + OTHERS
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ha, hb = phashes(images[a]), phashes(images[b])
            assert min(distance(ha[0], hb[0]), distance(ha[1], hb[0])) > HASH_MAX + 4, (a, b)


def test_mirror_hash_is_the_hash_of_the_flipped_image(images):
    """The mirrored hash read off the DCT equals the hash of the actually flipped image."""
    for name in REFS:
        assert distance(phashes(images[name])[1], phashes(images[name][:, ::-1])[0]) <= 2


def test_flat_image_has_no_hash():
    """A flat grey image gets no hash (otherwise every flat image would match every other)."""
    assert phashes(np.full((100, 80, 3), 128, np.uint8)) == (None, None)


def test_mirrored_copy_matches(model, images, index):
    """A horizontally flipped copy matches its reference through the mirrored hash."""
    found = index.match(sign_images(model, [images[REFS[1]][:, ::-1]])[0])
    assert found is not None and found.ref_id == REFS[1] and found.method == "phash-mirror"


def test_twenty_percent_crop_matches(model, images, index):
    """A window keeping 80 % of each side matches through the embedding."""
    rgb = images[REFS[0]]
    height, width = rgb.shape[:2]
    cropped = rgb[height // 10: height - height // 10, width // 5: width]
    found = index.match(sign_images(model, [cropped])[0])
    assert found is not None and found.ref_id == REFS[0]
    assert found.similarity is not None and found.similarity >= index.embedding_min


def test_unrelated_images_do_not_match(model, images, index):
    """Other photographs, people included, and video frames match nothing."""
    frames = list(video_frames(SHARED_DATA / "video" / "bottle-detection.mp4", every_s=8.0))
    queries = [images[n] for n in OTHERS] + frames
    assert index.match_batch(sign_images(model, queries)) == [None] * len(queries)


def test_small_blocky_copy_of_a_small_reference_matches(model, images):
    """A 90-pixel mirrored JPEG-30 copy of a 256-pixel reference matches through the embedding
    (the JPEG reference views lift it from ~0.78 to ~0.85), and other images still do not."""
    reference = load(OTHERS[2], 256)
    built = ImageIndex()
    built.add("rocket", "rocket.jpg", sign_images(model, [reference], reference=True)[0])
    down, side = reference.shape[0] // 20, reference.shape[1] // 20
    window = reference[down:reference.shape[0] - down, side:reference.shape[1] - side][:, ::-1]
    copy = Image.fromarray(np.ascontiguousarray(window))
    copy.thumbnail((90, 90))
    found = built.match(sign_images(model, [reencode(np.asarray(copy), 1.0, 30)])[0])
    assert found is not None and found.ref_id == "rocket" and found.method == "embedding"
    assert found.similarity is not None and found.similarity >= built.embedding_min + 0.01
    others = [reencode(images[name], 90 / 512, 30) for name in REFS]
    assert built.match_batch(sign_images(model, others)) == [None] * len(others)


def test_index_add_remove_and_replace(model, images):
    """Removal swaps rows without confusing the others; re-adding an id replaces it."""
    signatures = sign_images(model, [images[n] for n in REFS], reference=True)
    built = ImageIndex(capacity=2)  # also forces the arrays to grow
    for name, signature in zip(REFS, signatures):
        built.add(name, name, signature)
    assert len(built) == len(REFS)
    assert built.remove(REFS[0]) and not built.remove(REFS[0])
    assert len(built) == len(REFS) - 1
    assert built.match(signatures[0]) is None
    assert [m.ref_id for m in built.match_batch(signatures[1:])] == list(REFS[1:])
    built.add(REFS[1], "renamed", signatures[1])
    assert len(built) == len(REFS) - 1 and built.match(signatures[1]).name == "renamed"


def test_shortlist_finds_the_reference_among_many(model, images):
    """With more references than the shortlist, the sketch still keeps the true one."""
    rng = np.random.default_rng(0)
    built = ImageIndex()
    for number in range(500):
        vector = np.abs(rng.standard_normal(1280)).astype(np.float32)
        unit = (vector / np.linalg.norm(vector)).astype(np.float16)
        built.add(f"noise-{number}", "noise", ImageSignature(int(rng.integers(0, 2**63)), None, unit))
    reference = sign_images(model, [images[REFS[3]]], reference=True)[0]
    built.add("giraffe", "giraffe.jpg", reference)
    cropped = crop(Image.fromarray(images[REFS[3]]), np.random.default_rng(3))
    found = built.match(sign_images(model, [np.asarray(cropped)])[0])
    assert found is not None and found.ref_id == "giraffe"


def test_signature_round_trip(model, images):
    """Bytes round-trip exactly; anything else is refused."""
    signature = sign_images(model, [images[REFS[0]]])[0]
    blob = signature_to_bytes(signature)
    assert signature_from_bytes(blob) == signature and len(blob) < 2700
    flat = ImageSignature(None, None, signature.embedding)
    assert signature_from_bytes(signature_to_bytes(flat)) == flat
    for broken in (blob[:-3], b"XX" + blob[2:], blob + b"\0"):
        with pytest.raises(ValueError):
            signature_from_bytes(broken)
    with pytest.raises(ValueError):
        ImageIndex().add("old", "old", ImageSignature(1, 2, signature.embedding, version="ki0"))


def test_batch_equals_single(model, images, index):
    """Signing and matching a batch gives what one-at-a-time gives."""
    queries = [images[n][::2, ::2] for n in REFS + OTHERS]
    batched = sign_images(model, queries)
    single = [sign_images(model, [q])[0] for q in queries]
    for b, s in zip(batched, single):
        assert (b.phash, b.phash_mirror) == (s.phash, s.phash_mirror)
        assert float(np.dot(b.embedding.astype(np.float32), s.embedding.astype(np.float32))) > 0.999
    assert index.match_batch(batched) == [index.match(s) for s in single]


def test_distortions_are_deterministic_by_seed(images):
    """The same seed gives the same copies; another seed gives others."""
    rgb = images[REFS[2]]
    first, again = distortions(rgb, np.random.default_rng(5)), distortions(rgb, np.random.default_rng(5))
    other = distortions(rgb, np.random.default_rng(6))
    assert [name for name, _ in first] == list(KINDS)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again))
    assert not all(a.shape == b.shape and np.array_equal(a, b) for (_, a), (_, b) in zip(first, other))


def test_wilson_interval():
    """0 of 1000 still bounds the rate at about 3.8/1000."""
    assert wilson(0, 1000)["ci95"][1] == pytest.approx(0.0038, abs=2e-4)
    assert wilson(5, 10)["ci95"][0] < 0.5 < wilson(5, 10)["ci95"][1]


def test_identify_and_evaluate_on_small_folders(tmp_path, images):
    """identify names the reference file; evaluate reports recall and false positives per kind."""
    refs, negatives = tmp_path / "refs", tmp_path / "negatives"
    refs.mkdir(), negatives.mkdir()
    Image.fromarray(load(REFS[1], 512)).save(refs / "cat.png")
    Image.fromarray(load(OTHERS[0], 256)).save(negatives / "zidane.png")
    (negatives / "notes.txt").write_text("not an image")
    (negatives / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    query = tmp_path / "query.jpg"
    Image.fromarray(load(REFS[1], 200)[:, ::-1]).save(query, quality=40)
    results = list(identify(refs, [query, negatives / "zidane.png", negatives / "broken.jpg"], MODELS))
    assert [r["match"] for r in results] == ["cat.png", None, None] and "error" in results[2]
    report = evaluate(refs, negatives, MODELS, seed=0, copies=1)
    json.dumps(report)
    assert report["recall"]["n"] == len(KINDS) and report["false_positive_rate"]["n"] == len(KINDS) + 1
    assert report["recall"]["value"] == 1.0 and report["false_positive_rate"]["k"] == 0
    assert any("broken.jpg" in note for note in report["skipped"])
