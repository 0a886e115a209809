"""The known-image commands: `identify` (which reference, if any, each file is a copy of) and
`evaluate` (recall and false-positive rate of that decision on seeded distorted copies).

Both run the job's own core (udfs/known_images.py) with the same model, so what `evaluate`
measures is what the job decides. The lead wires them into trackius/cli.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from trackius.settings import REPO_ROOT
from udfs.distort import KINDS, distortions
from udfs.known_images import (
    EMBEDDING_MIN,
    HASH_MAX,
    VERSION,
    ImageIndex,
    ImageSignature,
    sign_images,
)
from udfs.models import read_manifest
from udfs.scenes import SceneModel

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
BATCH = 16
FRAME_EVERY_S = 0.5
Z95 = 1.959964
T = TypeVar("T")


def open_model(model_dir: Path) -> SceneModel:
    return SceneModel(model_dir, read_manifest(REPO_ROOT / "models" / "vision" / "manifest.json")["scenes"])


def decode(path: Path) -> np.ndarray | None:
    """RGB uint8 of an image file, or None when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def video_frames(path: Path, every_s: float = FRAME_EVERY_S) -> Iterator[np.ndarray]:
    """RGB frames of a video, one every `every_s` seconds."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        step = max(1, round((capture.get(cv2.CAP_PROP_FPS) or 25.0) * every_s))
        number = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            if number % step == 0:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            number += 1
    finally:
        capture.release()


def _files(folder: Path, suffixes: set[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _signed(model: SceneModel, items: Iterable[T], image: Callable[[T], np.ndarray],
            reference: bool = False) -> Iterator[tuple[T, ImageSignature]]:
    """Each item with the signature of its image, signed in batches of BATCH as they stream by
    (negatives may be thousands of frames: never all in memory)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield from zip(batch, sign_images(model, [image(i) for i in batch], reference))
            batch = []
    if batch:
        yield from zip(batch, sign_images(model, [image(i) for i in batch], reference))


def reference_index(model: SceneModel, refs_dir: Path) -> tuple[ImageIndex, dict[str, np.ndarray], list[str]]:
    """The index of every decodable image under refs_dir (keyed by its file name), the decoded
    references, and a note for each file skipped."""
    decoded: dict[str, np.ndarray] = {}
    skipped = []
    for path in _files(refs_dir, IMAGE_SUFFIXES):
        rgb = decode(path)
        if rgb is None:
            skipped.append(f"{path}: not decodable by Pillow")
        else:
            decoded[str(path.relative_to(refs_dir))] = rgb
    index = ImageIndex()
    for (key, _), signature in _signed(model, decoded.items(), lambda item: item[1], reference=True):
        index.add(key, Path(key).name, signature)
    return index, decoded, skipped


def identify(refs_dir: Path, files: list[Path], model_dir: Path) -> Iterator[dict[str, Any]]:
    """One dict per file: the matching reference's file name (or None) and how close it is."""
    model = open_model(model_dir)
    index, _, _ = reference_index(model, refs_dir)
    for path in files:
        rgb = decode(path)
        if rgb is None:
            yield {"file": str(path), "match": None, "distance": None,
                   "error": "not an image Pillow can decode"}
            continue
        found = index.match(sign_images(model, [rgb])[0])
        yield {"file": str(path), "match": found.name if found else None,
               "distance": _distance(found), "method": found.method if found else None,
               "similarity": found.similarity if found else None}


def _distance(found: Any) -> float | None:
    """Hash bits when a hash decided, else 1 - cosine."""
    if found is None:
        return None
    return found.distance if found.distance is not None else round(1.0 - found.similarity, 4)


def wilson(hits: int, n: int) -> dict[str, Any]:
    """A proportion with its 95 % Wilson interval (sound at 0 of n, unlike the normal one)."""
    if n == 0:
        return {"value": None, "k": 0, "n": 0, "ci95": None}
    p = hits / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    interval = [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]
    return {"value": round(p, 4), "k": hits, "n": n, "ci95": interval}


def _negatives(negatives_dir: Path, skipped: list[str]) -> Iterator[np.ndarray]:
    for path in _files(negatives_dir, IMAGE_SUFFIXES | VIDEO_SUFFIXES):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            yield from video_frames(path)
            continue
        rgb = decode(path)
        if rgb is None:
            skipped.append(f"{path}: not decodable by Pillow")
        else:
            yield rgb


def _copies(images: Iterable[tuple[str, np.ndarray]], rng: np.random.Generator,
            rounds: int) -> Iterator[tuple[str, str, np.ndarray]]:
    """(source key, kind, image): each image as is, then `rounds` distorted copies of every kind."""
    for key, rgb in images:
        yield key, "original", rgb
        for _ in range(rounds):
            for kind, copy in distortions(rgb, rng):
                yield key, kind, copy


def evaluate(refs_dir: Path, negatives_dir: Path, model_dir: Path, seed: int = 0, copies: int = 3,
             negative_copies: int = 1) -> dict[str, Any]:
    """Recall on distorted copies of the references (found = matched to its own reference) and
    the false-positive rate on the negatives and their distorted copies (any match is false)."""
    model = open_model(model_dir)
    index, decoded, skipped = reference_index(model, refs_dir)
    rng = np.random.default_rng(seed)
    found: dict[str, list[bool]] = defaultdict(list)
    for (key, kind, _), signature in _signed(model, _copies(decoded.items(), rng, copies), _third):
        hit = index.match(signature)
        found[kind].append(hit is not None and hit.ref_id == key)
    false: dict[str, list[bool]] = defaultdict(list)
    negatives = _copies((("", rgb) for rgb in _negatives(negatives_dir, skipped)), rng, negative_copies)
    for (_, kind, _), signature in _signed(model, negatives, _third):
        false[kind].append(index.match(signature) is not None)
    return _report(found, false, skipped, len(index), seed, copies, negative_copies)


def _third(item: tuple[str, str, np.ndarray]) -> np.ndarray:
    return item[2]


def _report(found: dict[str, list[bool]], false: dict[str, list[bool]], skipped: list[str], references: int,
            seed: int, copies: int, negative_copies: int) -> dict[str, Any]:
    def rate(values: list[bool]) -> dict[str, Any]:
        return wilson(sum(values), len(values))

    distorted = [hit for kind, hits in found.items() if kind != "original" for hit in hits]
    kinds = ["original", *KINDS]
    return {
        "references": references, "seed": seed, "copies": copies, "negative_copies": negative_copies,
        "signature": VERSION,
        "thresholds": {"hash_max_bits": HASH_MAX, "embedding_min_cosine": EMBEDDING_MIN},
        "recall": rate(distorted), "recall_with_originals": rate(distorted + found["original"]),
        "false_positive_rate": rate([f for values in false.values() for f in values]),
        "per_kind": {kind: {"recall": rate(found[kind]), "false_positive_rate": rate(false[kind])}
                     for kind in kinds},
        "skipped": skipped,
    }
