"""Known-clip index: fingerprint cost, fingerprint + match latency (p50/p95/p99) of 10 s queries,
build time and memory at 100 and 1,000 three-minute references.

    .venv/bin/python -m bench.audio_index

References are realistic rather than uniform: four of the shared music clips are real references;
the others are three-minute tracks spliced from 30 s stretches of those clips' (or their
reversals') spectral peaks, each stretch at its own tempo and pitch (0.6-0.85x or 1.2-1.6x each,
far outside the matched range): real music's skewed hash statistics, no copy of a reference.
Hit queries are 10 s excerpts of the real references, each under a random distortion (noise at
10 dB, re-encoding, speed 0.95-1.05); miss queries are 10 s of the other shared audio (music and
speech not in the index) under the same distortions. Prints one JSON object and writes
bench/results/audio_index.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from trackius.audioid import load_audio
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs import landmark_hashes as lh
from udfs.audio_distort import add_noise, change_speed, excerpt, reencode
from udfs.landmark_hashes import FRAME_S
from udfs.landmarks import FINGERPRINT_VERSION, ClipIndex, Landmarks, fingerprint

SR = 16000
SIZES = (100, 1_000)
TRACK_S = 180.0
CHUNK_S = 30.0
QUERIES = 120  # per kind (hit, miss) and size
MUSIC = SHARED_DATA / "audio" / "librosa"
REFERENCES = ("Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)",
              "Kevin_MacLeod_-_Vibe_Ace", "admiralbob77_-_Choice_-_Drum-bass",
              "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy")
OTHERS = (MUSIC / "Karissa_Hobbs_-_Lets_Go_Fishin.ogg", MUSIC / "sorohanro_-_solo-trumpet-06.ogg",
          MUSIC / "198-209-0000.ogg", SHARED_DATA / "audio" / "speech" / "jfk.flac")
N_BINS = lh.N_FFT // 2
Peaks = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # frames, bins, anchors, targets


def constellations(clips: list[np.ndarray]) -> list[Peaks]:
    """Reference peaks and their pairs of every clip and of its reversal."""
    out = []
    for clip in clips:
        for y in (clip, clip[::-1]):
            frames, bins = lh.peaks(lh.log_spectrogram(lh.analysis_rate(y, SR)))
            out.append((frames, bins, *lh.pairs(frames, bins, lh.FAN_OUT, lh.MAX_DT, lh.MAX_DF)))
    return out


def far_factor(rng: np.random.Generator) -> float:
    """A tempo or pitch factor in 0.6-0.85 or 1.2-1.6: another piece, not a distorted copy."""
    return float(rng.uniform(0.6, 0.85) if rng.random() < 0.5 else rng.uniform(1.2, 1.6))


def spliced(pool: list[Peaks], rng: np.random.Generator) -> Landmarks:
    """A TRACK_S-long fingerprint of CHUNK_S stretches of pool clips, each at its own tempo and
    pitch (peak coordinates scaled, then hashed as a reference would be)."""
    chunk = int(CHUNK_S / FRAME_S)
    hashes, frames = [], []
    for start in range(0, int(TRACK_S / FRAME_S), chunk):
        peak_frames, bins, anchors, targets = pool[int(rng.integers(len(pool)))]
        tempo, pitch = far_factor(rng), far_factor(rng)
        # hash_pairs divides bins by its speed and multiplies times by it.
        scaled = bins * pitch * tempo
        ok = (scaled[anchors] < N_BINS * tempo) & (scaled[targets] < N_BINS * tempo)
        h, f = lh.hash_pairs(peak_frames, scaled, anchors[ok], targets[ok], tempo)
        at = int(rng.integers(0, max(1, int(f.max(initial=0)) - chunk)))
        keep = (f >= at) & (f < at + chunk)
        hashes.append(h[keep])
        frames.append(f[keep] - at + start)
    return Landmarks(np.concatenate(hashes), np.concatenate(frames).astype(np.int32), TRACK_S)


def distorted(y: np.ndarray, rng: np.random.Generator, babble: list[np.ndarray]) -> np.ndarray:
    kind = int(rng.integers(4))
    if kind == 0:
        return add_noise(y, SR, 10.0, "white", rng)
    if kind == 1:
        return add_noise(y, SR, 10.0, "babble", rng, babble)
    if kind == 2:
        return reencode(y, SR, "mp3" if rng.random() < 0.5 else "ogg")
    return change_speed(y, SR, float(rng.uniform(0.95, 1.05)))


def queries(clips: list[np.ndarray], others: list[np.ndarray],
            rng: np.random.Generator) -> list[tuple[int | None, np.ndarray]]:
    """(index of the real reference or None, 10 s of distorted audio)."""
    out: list[tuple[int | None, np.ndarray]] = []
    for number in range(QUERIES):
        source = int(rng.integers(len(clips)))
        out.append((source, distorted(excerpt(clips[source], SR, 10.0, rng)[0], rng, others)))
        other = others[number % len(others)]
        out.append((None, distorted(excerpt(other, SR, 10.0, rng)[0], rng, others)))
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(values)
    return {f"p{p}": round(float(np.percentile(ms, p)), 2) for p in (50, 95, 99)}


def measure(size: int, clips: list[np.ndarray], pool: list[Peaks],
            tagged: list[tuple[int | None, np.ndarray]]) -> dict[str, Any]:
    rng = np.random.default_rng(size)
    index = ClipIndex()
    marks = [fingerprint(clip, SR) for clip in clips]
    start = time.perf_counter()
    for number in range(size - len(clips)):
        index.add(f"synthetic-{number}", "synthetic", spliced(pool, rng))
    for number, landmarks in enumerate(marks):
        index.add(f"real-{number}", f"real-{number}", landmarks)
    index.match(marks[0])  # the first match after adds builds the posting arrays
    build = time.perf_counter() - start
    timings: dict[str, list[float]] = {"hit": [], "miss": []}
    found = false = 0
    for source, audio in tagged:
        start = time.perf_counter()
        match = index.match_audio(audio, SR)
        timings["miss" if source is None else "hit"].append(time.perf_counter() - start)
        false += match is not None and source is None
        found += match is not None and source is not None and match.clip_id == f"real-{source}"
    return {"references": len(index), "build_s": round(build, 2),
            "memory_mb": round(index.nbytes / 2**20, 1),
            "match_ms": {"all": percentiles(timings["hit"] + timings["miss"]),
                         "hit": percentiles(timings["hit"]), "miss": percentiles(timings["miss"])},
            "hits_found": f"{found}/{len(timings['hit'])}",
            "false_matches": f"{false}/{len(timings['miss'])}"}


def fingerprint_cost(clips: list[np.ndarray]) -> dict[str, float]:
    """Fingerprint-only time of 10 s at SR (resampling to the analysis rate included)."""
    rng = np.random.default_rng(1)
    times = []
    for _ in range(100):
        y = excerpt(clips[int(rng.integers(len(clips)))], SR, 10.0, rng)[0]
        start = time.perf_counter()
        fingerprint(y, SR)
        times.append(time.perf_counter() - start)
    return percentiles(times)


def main() -> None:
    clips = [load_audio(MUSIC / f"{stem}.ogg", SR) for stem in REFERENCES]
    others = [load_audio(path, SR) for path in OTHERS]
    pool = constellations(clips)
    tagged = queries(clips, others, np.random.default_rng(0))
    result = {"bench": "audio_index", "fingerprint": FINGERPRINT_VERSION, "input_sr": SR,
              "track_s": TRACK_S, "queries": {"hit": QUERIES, "miss": QUERIES, "seconds": 10},
              "fingerprint_10s_ms": fingerprint_cost(clips),
              "sizes": [measure(size, clips, pool, tagged) for size in SIZES]}
    print(json.dumps(result))
    out = REPO_ROOT / "bench" / "results" / "audio_index.json"
    Path(out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
