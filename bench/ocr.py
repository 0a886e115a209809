"""OCR accuracy and latency on one core, on a generated set with known text and on real photos.

The set (seeded, built with Pillow): meme captions (white text with a black outline, top and
bottom, over each shared photo), screenshots (several lines of dark text on white), small text
(11 px), the shared photos as they are (they hold little or no text: whatever is read there is
noise) and a blank image. Captions are words of the VADER ground-truth tweets.

Per kind it reports the character error rate (edit distance over the true text's length, case
and whitespace folded), word recall (true words found), characters read in text-free photos,
and over all images the read() latency p50/p95/p99 and the peak memory added by the engine.
Output: a JSON object on stdout and in bench/results/ocr.json.

    python -m bench.ocr [--models DIR] [--tesseract] [--repeat 3]

--tesseract also measures Debian's Tesseract 5.3 (the candidate not chosen, called as udfs/ocr.py's
engine would be: PNG on stdin, TSV on stdout, one thread, same size bound and confidence filter).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.ocr import EMPTY, OcrEngine, OcrLine, OcrResult, create_ocr, rgb_of

RESULTS = REPO_ROOT / "bench" / "results"
PHOTOS = ("darknet", "skimage", "ultralytics")


@dataclass(frozen=True)
class Sample:
    kind: str  # meme | screenshot | small | photo | blank
    name: str
    rgb: np.ndarray
    truth: str  # "" where no text was drawn


def photos(data: Path = SHARED_DATA) -> list[tuple[str, np.ndarray]]:
    paths = sorted(p for d in PHOTOS for p in (data / "images" / d).iterdir())
    return [(p.name, np.asarray(Image.open(p).convert("RGB"))) for p in paths]


def phrases(data: Path = SHARED_DATA, seed: int = 3) -> list[list[str]]:
    """Word lists from real tweets: letters, digits and simple punctuation only."""
    lines = (data / "vader_groundtruth" / "tweets_GroundTruth.txt").read_text(
        encoding="utf-8", errors="replace").splitlines()
    out = []
    for line in lines:
        words = [w for w in line.split("\t")[-1].split()
                 if re.fullmatch(r"[A-Za-z][A-Za-z0-9',.!?-]*", w)]
        if len(words) >= 6:
            out.append(words)
    random.Random(seed).shuffle(out)
    return out


def wrap(words: list[str], font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines, line = [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if line and font.getlength(candidate) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line] if line else lines


def meme(rgb: np.ndarray, top: list[str], bottom: list[str]) -> tuple[np.ndarray, str]:
    """Classic meme: upper-case white captions with a black outline, top and bottom."""
    image = Image.fromarray(rgb)
    w, h = image.size
    font = ImageFont.load_default(size=max(18, w // 14))
    draw, truth = ImageDraw.Draw(image), []
    top_lines = wrap([x.upper() for x in top], font, int(w * 0.9))[:2]
    bottom_lines = wrap([x.upper() for x in bottom], font, int(w * 0.9))[:2]
    step = int(font.size * 1.2)
    margin = int(h * 0.03)
    starts = [(margin, top_lines), (h - margin - step * len(bottom_lines), bottom_lines)]
    for y, block in starts:
        for i, line in enumerate(block):
            x = (w - font.getlength(line)) / 2
            draw.text((x, y + i * step), line, font=font, fill="white",
                      stroke_width=max(2, font.size // 15), stroke_fill="black")
            truth.append(line)
    return np.asarray(image), "\n".join(truth)


def page(words: list[str], size: int, width: int = 640) -> tuple[np.ndarray, str]:
    """Screenshot-like: dark text on white, several lines, a little margin."""
    font = ImageFont.load_default(size=size)
    lines = wrap(words, font, width - 2 * size)
    step = int(size * 1.5)
    image = Image.new("RGB", (width, step * len(lines) + 2 * size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size, size + i * step), line, font=font, fill=(30, 30, 35))
    return np.asarray(image), "\n".join(lines)


def dataset(data: Path = SHARED_DATA, seed: int = 3) -> list[Sample]:
    texts, pics = phrases(data, seed), photos(data)
    rng = random.Random(seed)
    out = []
    for i, (name, rgb) in enumerate(pics):
        image, truth = meme(rgb, texts[2 * i][:6], texts[2 * i + 1][:6])
        out.append(Sample("meme", name, image, truth))
        out.append(Sample("photo", name, rgb, ""))
    for i in range(10):
        words = [w for t in texts[40 + 3 * i:43 + 3 * i] for w in t]
        image, truth = page(words[:40], rng.choice((16, 18, 20)))
        out.append(Sample("screenshot", f"screen{i}", image, truth))
        image, truth = page(words[:24], 11, width=360)
        out.append(Sample("small", f"small{i}", image, truth))
    out.append(Sample("blank", "blank", np.full((480, 640, 3), 255, np.uint8), ""))
    return out


def fold(text: str) -> str:
    return " ".join(text.lower().split())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def recall(truth: str, read: str) -> float:
    want, got = words(truth), words(read)
    found = 0
    for word in want:
        if word in got:
            got.remove(word)
            found += 1
    return found / len(want) if want else 1.0


def measure(engine: OcrEngine, samples: list[Sample], repeat: int) -> dict:
    times, per_kind, examples = [], {}, {}
    base = _peak(resource.RUSAGE_SELF)
    for sample in samples:
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = engine.read(sample.rgb)
            times.append((time.perf_counter() - t0) * 1000)
        stats = per_kind.setdefault(sample.kind, {"n": 0, "cer": [], "recall": [], "chars": [],
                                                  "ms": []})
        stats["n"] += 1
        stats["ms"].extend(times[-repeat:])
        stats["chars"].append(len(result.text))
        if sample.truth:
            truth = fold(sample.truth)
            stats["cer"].append(edit_distance(fold(result.text), truth) / len(truth))
            stats["recall"].append(recall(sample.truth, result.text))
        examples.setdefault(sample.kind, {"truth": sample.truth, "read": result.text})
    q = statistics.quantiles(times, n=100)
    return {
        "engine": engine.name,
        "latency_ms": {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1),
                       "mean": round(statistics.fmean(times), 1)},
        "kinds": {kind: summary(stats) for kind, stats in per_kind.items()},
        "peak_rss_added_mb": round((_peak(resource.RUSAGE_SELF) - base) / 1024, 1),
        "child_peak_rss_mb": round(_peak(resource.RUSAGE_CHILDREN) / 1024, 1),
        "examples": examples,
    }


def _peak(who: int) -> int:
    """Peak resident set in KiB (Linux): of this process, or of the largest child so far."""
    return resource.getrusage(who).ru_maxrss


def summary(stats: dict) -> dict:
    out = {"n": stats["n"], "chars_read_mean": round(statistics.fmean(stats["chars"]), 1),
           "with_text": sum(c > 0 for c in stats["chars"]),
           "p50_ms": round(statistics.median(stats["ms"]), 1)}
    if stats["cer"]:
        out["cer"] = round(statistics.fmean(stats["cer"]), 3)
        out["word_recall"] = round(statistics.fmean(stats["recall"]), 3)
    return out


class TesseractOcr:
    """Tesseract 5 through its command line; words grouped into its own lines."""

    name = "tesseract-5"

    def __init__(self, binary: str = "tesseract", psm: int = 3, min_confidence: float = 0.6,
                 max_side: int = 1280) -> None:
        self.command = [binary, "stdin", "stdout", "--psm", str(psm), "-l", "eng", "tsv"]
        self.min_confidence, self.max_side = min_confidence, max_side

    def read(self, rgb: np.ndarray) -> OcrResult:
        image = Image.fromarray(rgb_of(rgb))
        scale = min(1.0, self.max_side / max(image.size))
        if scale < 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)))
        png = io.BytesIO()
        image.save(png, "PNG", compress_level=1)
        done = subprocess.run(self.command, input=png.getvalue(), capture_output=True, check=True,
                              env={"OMP_THREAD_LIMIT": "1"}, timeout=30)
        return self._parse(done.stdout.decode("utf-8", "replace"), scale)

    def _parse(self, tsv: str, scale: float) -> OcrResult:
        groups: dict[tuple[str, ...], list[tuple[str, float, tuple[int, ...]]]] = {}
        for row in tsv.splitlines()[1:]:
            f = row.split("\t")
            if len(f) != 12 or f[0] != "5" or not f[11].strip():  # level 5: one word
                continue
            if (conf := float(f[10]) / 100) >= self.min_confidence:
                x, y, w, h = (int(int(v) / scale) for v in f[6:10])
                groups.setdefault(tuple(f[1:5]), []).append((f[11], conf, (x, y, x + w, y + h)))
        lines = [OcrLine(" ".join(t for t, _, _ in ws), min(c for _, c, _ in ws),
                         (min(b[0] for *_, b in ws), min(b[1] for *_, b in ws),
                          max(b[2] for *_, b in ws), max(b[3] for *_, b in ws)))
                 for ws in groups.values()]
        return OcrResult.of(lines) if lines else EMPTY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "models" / "ocr")
    parser.add_argument("--tesseract", action="store_true", help="also measure Tesseract")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    samples = dataset()
    report = {"images": len(samples), "repeat": args.repeat, "engines": []}
    engine = create_ocr(args.models)
    if engine is not None:
        engine.read(samples[0].rgb)  # first-run allocations are not latency
        report["engines"].append(measure(engine, samples, args.repeat))
    if args.tesseract:
        report["engines"].append(measure(TesseractOcr(), samples, args.repeat))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ocr.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
