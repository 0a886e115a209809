"""The audio stage's budget: 10 s of audio through the job's own analyzer (voice activity,
landmark fingerprint and match against 1,000 reference tracks, sound patterns), p50/p95/p99 per
chunk and per step; and voice-activity throughput with streams batched 1, 4 and 8 at a time.

    .venv/bin/python -m bench.audio [--iterations 100] [--references 1000] [--phases 0|1|3]
                                    [--out [bench/results/audio.json]]

References: the shared music clips, plus decoys made from their fingerprints with every hash
XOR-ed by a random mask per decoy (realistic posting-list density, no accidental matches) until
there are `--references`, each the length of a 3-minute track. Queries: 10 s chunks of speech
(JFK), of a reference (hits) and of noise, as the job cuts them. Speech-to-text is not in the
budget (it runs on its own thread, only when a rule reads text): see bench/stt.py.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.report import emit, host, percentiles, timed
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.audio import ANALYSIS_RATE, AudioInfo, read_audio
from udfs.landmarks import Landmarks, fingerprint
from udfs.listening import AudioAnalyzer, clip_index
from udfs.models import read_manifest
from udfs.vad import VoiceActivity

RESULTS = REPO_ROOT / "bench" / "results" / "audio.json"
MUSIC = SHARED_DATA / "audio" / "librosa"
CHUNK = 10 * ANALYSIS_RATE


def timings(run: Callable[[], object], iterations: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        run()
    return [timed(run) for _ in range(iterations)]


def references(count: int, rng: np.random.Generator) -> list[tuple[str, Landmarks]]:
    real = [(path.stem, fingerprint(read_audio(path), ANALYSIS_RATE)) for path in sorted(MUSIC.glob("*.ogg"))]
    found = list(real)
    while len(found) < count:
        _, marks = real[len(found) % len(real)]
        repeats = max(1, int(np.ceil(180 / max(marks.duration_s, 1.0))))  # stretch to ~3 minutes
        bits = int(marks.hashes.max()).bit_length()  # stay inside the hash space the index expects
        hashes = np.tile(marks.hashes, repeats) ^ np.uint32(rng.integers(1, 2**bits))
        frames = np.concatenate([marks.frames + i * (int(marks.frames.max()) + 1) for i in range(repeats)])
        found.append((f"decoy-{len(found)}", replace(marks, hashes=hashes, frames=frames.astype(marks.frames.dtype))))
    return found


def queries() -> dict[str, np.ndarray]:
    vibe = read_audio(MUSIC / "Kevin_MacLeod_-_Vibe_Ace.ogg")
    noise = np.random.default_rng(5).normal(0, 0.05, CHUNK).astype(np.float32)
    speech = read_audio(SHARED_DATA / "audio" / "speech" / "jfk.flac")[:CHUNK]
    return {"speech": speech, "reference": vibe[20 * ANALYSIS_RATE:20 * ANALYSIS_RATE + CHUNK], "noise": noise}


def chunk_budget(analyzer: AudioAnalyzer, chunks: dict[str, np.ndarray], iterations: int) -> dict:
    info = AudioInfo("bench", ANALYSIS_RATE, 1, None, "bench")
    out = {}
    for name, chunk in chunks.items():
        def one(chunk: np.ndarray = chunk) -> None:
            analyzer.analyse([analyzer.start(info)], [chunk])
        out[name] = percentiles(timings(one, iterations))
    steps = {
        "vad": lambda: analyzer.vad.push_many([analyzer.vad.stream()], [chunks["speech"]]),
        "landmarks_match": lambda: analyzer.clips.match_audio(chunks["speech"], ANALYSIS_RATE),
        "sounds": lambda: analyzer.start(info).sounds.push(chunks["speech"]),
    }
    out["steps"] = {name: percentiles(timings(run, iterations)) for name, run in steps.items()}
    return out


def vad_throughput(vad: VoiceActivity, speech: np.ndarray, iterations: int) -> dict:
    out = {}
    for streams in (1, 4, 8):
        times = timings(lambda n=streams: vad.push_many([vad.stream() for _ in range(n)], [speech] * n),
                      max(5, iterations // 10))
        median_s = float(np.median(times)) / 1000
        out[f"{streams}_streams"] = {"ms_per_10s_chunk_each": round(median_s * 1000 / streams, 2),
                                     "x_realtime": round(streams * len(speech) / ANALYSIS_RATE / median_s, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--references", type=int, default=1000)
    parser.add_argument("--phases", type=int, default=0,
                        help="query framings, as TRACKIUS_AUDIO_MATCH_PHASES (0: 3 up to 250 references, 1 beyond)")
    parser.add_argument("--out", type=Path, nargs="?", const=RESULTS, help=f"also write the JSON (default {RESULTS})")
    args = parser.parse_args()
    vad = VoiceActivity(SHARED_DATA / "models", read_manifest(REPO_ROOT / "models" / "audio" / "manifest.json")["vad"])
    analyzer = AudioAnalyzer(vad, clip_index(args.phases))
    started = time.perf_counter()
    for ref_id, marks in references(args.references, np.random.default_rng(0)):
        analyzer.clips.add(ref_id, ref_id, marks)
    chunks = queries()
    analyzer.clips.match_audio(chunks["noise"], ANALYSIS_RATE)  # builds the index
    result = {
        "host": host(),
        "references": len(analyzer.clips), "phases": len(analyzer.clips.phases_now()), "index_build_s": round(time.perf_counter() - started, 2),
        "chunk_10s": chunk_budget(analyzer, chunks, args.iterations),
        "vad_throughput": vad_throughput(vad, chunks["speech"], args.iterations),
        "budget_p99_ms": 100,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
