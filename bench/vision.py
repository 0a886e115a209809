"""Per-image visual-analysis latency: YOLOX-nano objects, UltraFace faces and MobileNetV2 scenes
on one 640-px image, each through the project's own classes (preprocessing, the run and the
decoding included), plus MobileNetV2 in batches (the one vision model whose graph batches).

Sessions are opened as the runner opens them (udfs/models.py: one intra-op and one inter-op
thread), and OpenCV is held to one thread too, since the job runs one operator per core. The
image is shared/data's bus.jpg scaled so that its long side is 640 px; the batches mix the
shared images, each scaled the same way. Prints one JSON object; `--out` also writes it.

    python -m bench.vision [--iterations 100] [--warmup 10] [--provider cpu|auto|cuda]
                           [--batches 8,32] [--out [bench/results/vision.json]]

`--provider cpu` (the default) keeps every session on the CPU even where a GPU exists; `auto`
takes udfs/onnx.providers()'s choice; `cuda` insists on CUDA and stops when it is not there.
The JSON names the providers each session really got.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import udfs.onnx
from bench.report import emit, host, percentiles, timed
from trackius.settings import REPO_ROOT, Settings
from udfs.detectors import FaceDetector, ObjectDetector
from udfs.models import read_manifest
from udfs.scenes import SceneModel

RESULTS = REPO_ROOT / "bench" / "results" / "vision.json"
MANIFEST = REPO_ROOT / "models" / "vision" / "manifest.json"
LONG_SIDE = 640


def load(path: Path, long_side: int = LONG_SIDE) -> np.ndarray:
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    scale = long_side / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def choose_providers(choice: str) -> None:
    """Steer the runner's provider choice for this process (the runner itself reads no flags)."""
    import onnxruntime as ort

    if choice == "cpu":
        udfs.onnx.providers = lambda: [udfs.onnx.CPU]
    elif choice == "cuda" and udfs.onnx.providers()[0] != udfs.onnx.CUDA:
        raise SystemExit(f"CUDA was asked for but is not usable here: onnxruntime offers "
                         f"{ort.get_available_providers()} and /dev/nvidiactl "
                         f"{'exists' if Path('/dev/nvidiactl').exists() else 'is absent'}")


def per_image(models: dict[str, Callable[[np.ndarray], object]], image: np.ndarray,
              iterations: int, warmup: int) -> dict[str, dict[str, float]]:
    """Each model's latency on the image, and all three one after the other (the image's cost)."""
    times: dict[str, list[float]] = {name: [] for name in [*models, "all"]}
    for i in range(warmup + iterations):
        spent = {name: timed(lambda run=run: run(image)) for name, run in models.items()}
        if i >= warmup:
            for name, ms in spent.items():
                times[name].append(ms)
            times["all"].append(sum(spent.values()))
    return {name: percentiles(values) for name, values in times.items()}


def batched(scenes: SceneModel, images: list[np.ndarray], sizes: list[int], iterations: int) -> dict[str, dict]:
    result = {}
    for size in sizes:
        batch = [images[i % len(images)] for i in range(size)]
        scenes.forward(batch)  # warm-up
        times = [timed(lambda b=batch: scenes.top_labels(scenes.forward(b).logits)) for _ in range(iterations)]
        stats = percentiles(times)
        result[str(size)] = {**stats, "images_per_s": round(size * 1000 / stats["mean_ms"], 1),
                             "ms_per_image": round(stats["mean_ms"] / size, 2)}
    return result


def whole_image(objects: ObjectDetector, faces: FaceDetector, scenes: SceneModel, image: np.ndarray,
                iterations: int, warmup: int, references: int) -> dict[str, dict]:
    """What the job spends on one image: decoding its JPEG, the three models, its signature and
    the lookup among `references` tracked images (udfs/visual.py, as AnalyzeMedia runs it)."""
    from bench.image_index import synthetic
    from udfs.imaging import decode_image, encode_jpeg
    from udfs.known_images import ImageIndex, sign_images
    from udfs.visual import VisualAnalyzer

    index = ImageIndex()
    bases = sign_images(scenes, [image], reference=True)
    for i, signature in enumerate(synthetic(bases, references, np.random.default_rng(0))):
        index.add(f"ref-{i}", f"ref-{i}", signature)
    analyzer = VisualAnalyzer(objects, faces, scenes, index)
    data = encode_jpeg(image, 90)

    def analyse() -> object:
        return analyzer.analyse_images([decode_image(data).rgb])

    for _ in range(warmup):
        analyse()
    return {"decode_models_signature_lookup": percentiles([timed(analyse) for _ in range(iterations)]),
            "references": {"count": references}}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.vision", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100, help="timed runs per model (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--batch-iterations", type=int, default=20, help="timed runs per batch size (default 20)")
    parser.add_argument("--batches", default="8,32", help="MobileNetV2 batch sizes (default 8,32)")
    parser.add_argument("--provider", choices=["cpu", "auto", "cuda"], default="cpu",
                        help="cpu (default), auto (the runner's choice) or cuda (fail without it)")
    parser.add_argument("--references", type=int, default=10_000,
                        help="tracked images in the index for the whole-image timing (default 10000)")
    parser.add_argument("--image", type=Path, help="image to time (default shared bus.jpg at 640 px)")
    parser.add_argument("--out", type=Path, nargs="?", const=RESULTS, help=f"also write the JSON (default {RESULTS})")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    choose_providers(args.provider)
    cv2.setNumThreads(1)
    settings = Settings()
    specs = read_manifest(MANIFEST)
    objects = ObjectDetector(settings.model_dir, specs["objects"])
    faces = FaceDetector(settings.model_dir, specs["faces"])
    scenes = SceneModel(settings.model_dir, specs["scenes"])
    image = load(args.image or settings.data_dir / "images" / "ultralytics" / "bus.jpg")
    models = {"objects": objects.detect, "faces": faces.detect,
              "scenes": lambda rgb: scenes.top_labels(scenes.forward([rgb]).logits)}
    mix = [load(path) for path in sorted((settings.data_dir / "images").rglob("*")) if path.suffix in {".png", ".jpg"}]
    report = {
        "image": {"height": image.shape[0], "width": image.shape[1]},
        "providers": {"objects": objects.session.providers, "faces": faces.session.providers,
                      "scenes": scenes.session.providers},
        "threads": {"onnxruntime_intra_op": 1, "opencv": cv2.getNumThreads()},
        "detections": {"objects": len(objects.detect(image)), "faces": len(faces.detect(image))},
        "per_image": per_image(models, image, args.iterations, args.warmup),
        "whole_image": whole_image(objects, faces, scenes, image, args.iterations, args.warmup, args.references),
        "scenes_batched": batched(scenes, mix, [int(s) for s in args.batches.split(",")], args.batch_iterations),
        "host": host(),
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
