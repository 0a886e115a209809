"""The known-clip commands: `identify` (which reference audio, if any, each file is an excerpt of)
and `evaluate` (recall and false-positive rate of that decision on seeded distorted excerpts).

Both run the job's own core (udfs/landmarks.py) with its default thresholds, so what `evaluate`
measures is what the job decides. The audio counterpart of trackius/imageid.py, with the same
output shape; the lead wires both into trackius/cli.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import MediaError
from trackius.imageid import wilson
from udfs.audio import ANALYSIS_RATE, read_audio
from udfs.audio_distort import KINDS, distort, excerpt
from udfs.landmarks import FINGERPRINT_VERSION, ClipIndex, fingerprint

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au"}
SR = ANALYSIS_RATE  # what the job's audio stage hands the fingerprint
LENGTHS_S = (2.0, 5.0, 10.0)
OFFSET_TOLERANCE_S = 0.5  # a hit is the right reference with its start within this of the truth


def load_audio(path: Path | str, sr: int = SR) -> np.ndarray | None:
    """Mono float32 at `sr` through the job's own decoder, or None when it is not audio."""
    try:
        return read_audio(Path(path), sr)
    except (MediaError, OSError):
        return None


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _decoded(folder: Path, skipped: list[str]) -> dict[str, np.ndarray]:
    """Every readable audio file under folder, keyed by its path relative to folder."""
    out = {}
    for path in _files(folder):
        samples = load_audio(path)
        if samples is None or samples.size == 0:
            skipped.append(f"{path}: not audio libsndfile can read")
        else:
            out[str(path.relative_to(folder))] = samples
    return out


def reference_index(refs_dir: Path) -> tuple[ClipIndex, dict[str, np.ndarray], list[str]]:
    """The index of every readable audio file under refs_dir (keyed by its relative path, named
    by its file name), the decoded references, and a note for each file skipped."""
    skipped: list[str] = []
    decoded = _decoded(refs_dir, skipped)
    index = ClipIndex()
    for key, samples in decoded.items():
        index.add(key, Path(key).name, fingerprint(samples, SR))
    return index, decoded, skipped


def identify(refs_dir: Path, files: Sequence[Path | str]) -> Iterator[dict[str, Any]]:
    """One dict per file: the matching reference's file name (or None), the match confidence
    (0 when none), where the file's start sits in the reference, and the speed it was played at."""
    index, _, _ = reference_index(refs_dir)
    for path in files:
        samples = load_audio(path)
        if samples is None:
            yield {"file": str(path), "match": None, "score": 0.0, "offset_s": None,
                   "error": "not audio libsndfile can read"}
            continue
        found = index.match_audio(samples, SR)
        if found is None:
            yield {"file": str(path), "match": None, "score": 0.0, "offset_s": None}
            continue
        yield {"file": str(path), "match": found.name, "score": found.confidence,
               "offset_s": round(found.offset_s, 3), "query_offset_s": round(found.query_offset_s, 3),
               "speed": found.speed, "votes": found.score}


def _excerpts(audio: dict[str, np.ndarray], rng: np.random.Generator, per_source: int,
              babble: list[np.ndarray]) -> Iterator[tuple[float, str, str, float, np.ndarray]]:
    """(length, kind, source key, start s, samples): per length and source, `per_source` random
    excerpts, each as is and under every distortion of KINDS."""
    for length in LENGTHS_S:
        for key, samples in audio.items():
            for _ in range(per_source):
                clip, start = excerpt(samples, SR, length, rng)
                for kind in ("original", *KINDS):
                    yield length, kind, key, start, distort(clip, SR, kind, rng, babble)


def evaluate(refs_dir: Path, negatives_dir: Path, seed: int = 0, per_ref: int = 8,
             babble_dir: Path | None = None) -> dict[str, Any]:
    """Recall on distorted excerpts of the references (found = its own reference, with the start
    within OFFSET_TOLERANCE_S) and the false-positive rate on excerpts of the negatives under the
    same distortions (any match is false). Babble is mixed from the audio in `babble_dir`
    (speech, ideally), by default the negatives."""
    index, decoded, skipped = reference_index(refs_dir)
    negatives = _decoded(negatives_dir, skipped)
    babble = list((_decoded(babble_dir, skipped) if babble_dir else negatives).values())
    rng = np.random.default_rng(seed)
    found: dict[tuple[float, str], list[bool]] = defaultdict(list)
    clip_found: list[bool] = []
    for length, kind, key, start, samples in _excerpts(decoded, rng, per_ref, babble):
        hit = index.match_audio(samples, SR)
        right_clip = hit is not None and hit.clip_id == key
        found[length, kind].append(right_clip and abs(hit.offset_s - start) <= OFFSET_TOLERANCE_S)
        if kind != "original":
            clip_found.append(right_clip)
    false: dict[tuple[float, str], list[bool]] = defaultdict(list)
    for length, kind, _, _, samples in _excerpts(negatives, rng, per_ref, babble):
        false[length, kind].append(index.match_audio(samples, SR) is not None)
    report = _report(found, false, index)
    report.update({"references": len(index), "negatives": len(negatives), "seed": seed,
                   "per_ref": per_ref, "clip_recall": _rate(clip_found), "skipped": skipped})
    return report


def _rate(values: list[bool]) -> dict[str, Any]:
    """{"hits", "n", "rate", "ci95"} with the 95 % Wilson interval."""
    proportion = wilson(sum(values), len(values))
    return {"hits": proportion["k"], "n": proportion["n"], "rate": proportion["value"],
            "ci95": proportion["ci95"]}


def _pooled(table: dict[tuple[float, str], list[bool]], length: float | None = None,
            kind: str | None = None, originals: bool = False) -> list[bool]:
    """Outcomes of one length and kind; all kinds when kind is None, undistorted excerpts
    included only with `originals` (recall is about distorted copies; any negative counts)."""
    return [v for (ln, k), values in table.items() for v in values
            if (length is None or ln == length)
            and (k == kind if kind else originals or k != "original")]


def _report(found: dict[tuple[float, str], list[bool]], false: dict[tuple[float, str], list[bool]],
            index: ClipIndex) -> dict[str, Any]:
    def both(length: float | None = None, kind: str | None = None) -> dict[str, Any]:
        return {"recall": _rate(_pooled(found, length, kind)),
                "false_positive_rate": _rate(_pooled(false, length, kind, originals=True))}

    kinds = ("original", *KINDS)
    return {
        "fingerprint": FINGERPRINT_VERSION, "offset_tolerance_s": OFFSET_TOLERANCE_S,
        "thresholds": {"min_score": index.min_score, "min_confidence": index.min_confidence},
        "recall": _rate(_pooled(found)),
        "recall_with_originals": _rate(_pooled(found, originals=True)),
        "false_positive_rate": _rate(_pooled(false, originals=True)),
        "per_length": {f"{length:g}s": {**both(length),
                                        "per_kind": {k: both(length, k) for k in kinds}}
                       for length in LENGTHS_S},
        "per_kind": {kind: both(None, kind) for kind in kinds},
    }
