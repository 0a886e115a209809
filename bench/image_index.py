"""Known-image index: lookup latency (p50/p99), build time and memory at 1k, 10k and 100k references.

    .venv/bin/python -m bench.image_index

References are realistic rather than uniform: each is the embedding of one of the shared images
or video frames plus Gaussian noise (cosine ~0.8 to its source, so many references crowd the
same region, as near-duplicate memes do) with a random 64-bit hash. Queries are signatures of
video frames (no match: they take the full path, hash scan + sketch shortlist + re-score) and
of distorted shared images (found by hash or embedding). Prints one JSON object.
"""

from __future__ import annotations

import json
import time

import numpy as np

from trackius.imageid import decode, open_model, video_frames
from trackius.settings import SHARED_DATA
from udfs.distort import distortions
from udfs.known_images import ImageIndex, ImageSignature, sign_images

SIZES = (1_000, 10_000, 100_000)
NOISE = 0.02  # per component, on unit vectors of 1280 dimensions: cosine ~0.8 to the source


def real_signatures() -> tuple[list[ImageSignature], list[ImageSignature], list[ImageSignature]]:
    """(references' bases, queries that match nothing, distorted copies of the references)."""
    model = open_model(SHARED_DATA / "models")
    images = [rgb for path in sorted(SHARED_DATA.glob("images/*/*")) if (rgb := decode(path)) is not None]
    videos = sorted(SHARED_DATA.glob("video/*.mp4"))
    frames = [frame for video in videos for frame in video_frames(video, every_s=4.0)]
    rng = np.random.default_rng(0)
    copies = [copy for rgb in images for _, copy in distortions(rgb, rng)]
    return (sign_images(model, images, reference=True), sign_images(model, frames),
            sign_images(model, copies))


def synthetic(bases: list[ImageSignature], count: int, rng: np.random.Generator) -> list[ImageSignature]:
    vectors = np.stack([b.embedding.astype(np.float32) for b in bases])[rng.integers(0, len(bases), count)]
    vectors = np.abs(vectors + rng.normal(0, NOISE, vectors.shape)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hashes = rng.integers(0, 2**63, count, dtype=np.int64)
    return [ImageSignature(int(h), None, v.astype(np.float16)) for h, v in zip(hashes, vectors)]


def measure(size: int, bases: list[ImageSignature], misses: list[ImageSignature],
            copies: list[ImageSignature]) -> dict[str, object]:
    rng = np.random.default_rng(size)
    refs = synthetic(bases, size - len(bases), rng)
    index = ImageIndex()
    start = time.perf_counter()
    for number, signature in enumerate(refs):
        index.add(f"synthetic-{number}", "synthetic", signature)
    for number, signature in enumerate(bases):
        index.add(f"real-{number}", f"real-{number}", signature)
    build = time.perf_counter() - start
    timings, found, false = [], 0, 0
    tagged = [(False, query) for query in misses] + [(True, query) for query in copies]
    for is_copy, query in tagged * 3:
        start = time.perf_counter()
        match = index.match(query)
        timings.append(time.perf_counter() - start)
        false += match is not None and not is_copy
        found += match is not None and is_copy and match.ref_id.startswith("real-")
    removal = time.perf_counter()
    for number in range(100):
        index.remove(f"synthetic-{number}")
    return {
        "references": len(refs) + len(bases), "build_s": round(build, 2),
        "memory_mb": round(index.nbytes / 2**20, 1),
        "lookup_ms_p50": round(1000 * float(np.percentile(timings, 50)), 3),
        "lookup_ms_p99": round(1000 * float(np.percentile(timings, 99)), 3),
        "queries": len(timings), "copies_found": found, "false_matches": false,
        "remove_us": round(1e6 * (time.perf_counter() - removal) / 100, 1),
    }


def main() -> None:
    bases, misses, copies = real_signatures()
    results = [measure(size, bases, misses, copies) for size in SIZES]
    queries = {"no_match": len(misses), "distorted_refs": len(copies), "rounds": 3}
    print(json.dumps({"bench": "image_index", "queries": queries, "sizes": results}))


if __name__ == "__main__":
    main()
