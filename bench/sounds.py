"""Sound-pattern core (udfs/sounds.py): cost per 10 s of audio and per-second accuracy.

Times `profile()` on 10 s of 16 kHz audio (without and with VAD probabilities) and the
streaming tracker fed the same 10 s in 0.5 s chunks, with BLAS held to one thread (the job runs
one operator per core) and with the default threads (the core keeps its matrix products small
enough to stay on one thread either way). Compares the tempo with librosa's beat tracker and the
classes at 8/16/44.1 kHz. Then classifies every second of the labelled clips (the shared music
and speech clips, plus generated silence, noise, claps, hum, door slams and bird-like chirps)
with and without Silero VAD probabilities: per-clip accuracy and confusion matrices (rows the
expected class, columns the given one). Prints one JSON object; `--out` also writes it.

    python -m bench.sounds [--iterations 200] [--out [bench/results/sounds.json]]

The generators here are also what tests/unit/test_sounds.py uses, so both see the same sounds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bench.report import emit, host, percentiles, timed
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.sounds import CLASSES, SoundTracker, profile

RESULTS = REPO_ROOT / "bench" / "results" / "sounds.json"
SR = 16000
LIBROSA = SHARED_DATA / "audio" / "librosa"
MUSIC = {
    "brahms": "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
    "vibeace": "Kevin_MacLeod_-_Vibe_Ace.ogg",
    "choice": "admiralbob77_-_Choice_-_Drum-bass.ogg",
    "fishin": "Karissa_Hobbs_-_Lets_Go_Fishin.ogg",
    "nutcracker": "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg",
    "trumpet": "sorohanro_-_solo-trumpet-06.ogg",
}
SPEECH = {
    "libri": LIBROSA / "198-209-0000.ogg",
    "jfk": SHARED_DATA / "audio" / "speech" / "jfk.flac",
    **{f"wake_{p.stem}": p for p in sorted((SHARED_DATA / "audio" / "wakeword").glob("*.wav"))},
}


def load(path: Path, sr: int = SR) -> np.ndarray:
    import librosa

    return librosa.load(path, sr=sr, mono=True)[0]


def real_clips(sr: int = SR) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (expected class, samples) for the shared clips."""
    clips = {name: ("music", load(LIBROSA / file, sr)) for name, file in MUSIC.items()}
    clips.update({name: ("speech", load(path, sr)) for name, path in SPEECH.items()})
    return clips


def at_db(signal: np.ndarray, level_db: float) -> np.ndarray:
    """The signal scaled to an RMS of `level_db` dBFS."""
    rms = float(np.sqrt(np.mean(np.square(signal.astype(np.float64))))) or 1.0
    return (signal * (10 ** (level_db / 20) / rms)).astype(np.float32)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return np.fft.irfft(spectrum, n)


def chirps(seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Bird-like song: 40-120 ms sweeps between 2 and 8 kHz, a few per second, over faint noise."""
    out = rng.standard_normal(int(seconds * sr)) * 0.003
    at = 0.1
    while at < seconds - 0.2:
        length = rng.uniform(0.04, 0.12)
        t = np.arange(int(length * sr)) / sr
        f0, f1 = rng.uniform(2000, 5000), rng.uniform(3000, 8000)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * length))
        start = int(at * sr)
        out[start:start + len(t)] += 0.3 * np.sin(phase) * np.hanning(len(t))
        at += length + rng.uniform(0.05, 0.4)
    return out.astype(np.float32)


def claps(seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Hand-clap-like bursts: 10 ms decaying noise, 2-5 a second, irregular."""
    out = rng.standard_normal(int(seconds * sr)) * 0.002
    at = 0.05
    while at < seconds - 0.1:
        t = np.arange(int(0.05 * sr)) / sr
        start = int(at * sr)
        out[start:start + len(t)] += 0.5 * rng.standard_normal(len(t)) * np.exp(-t / 0.01)
        at += rng.uniform(0.2, 0.5)
    return out.astype(np.float32)


def hum(seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Engine-like hum: a 50 Hz-ish firing tone with harmonics, slow wobble, and road noise."""
    t = np.arange(int(seconds * sr)) / sr
    f = 48 + 2 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    return at_db(tone + 0.3 * pink(len(t), rng), -20)


def clicks(seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Door slams: a click and a short thud every 0.7 s over quiet room tone."""
    out = rng.standard_normal(int(seconds * sr)) * 0.001
    for at in np.arange(0.3, seconds - 0.3, 0.7):
        t = np.arange(int(0.15 * sr)) / sr
        start = int(at * sr)
        thud = np.sin(2 * np.pi * 70 * t) * np.exp(-t / 0.03) + rng.standard_normal(len(t)) * np.exp(-t / 0.005)
        out[start:start + len(t)] += 0.6 * thud
    return out.astype(np.float32)


def synthetic_clips(seconds: float = 10.0, seed: int = 3) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (expected class, samples at 16 kHz) for generated silence and other sounds."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    return {
        "zeros": ("silence", np.zeros(n, np.float32)),
        "noise_-60dB": ("silence", at_db(rng.standard_normal(n), -60)),
        "white_-20dB": ("other", at_db(rng.standard_normal(n), -20)),
        "pink_-25dB": ("other", at_db(pink(n, rng), -25)),
        "claps": ("other", claps(seconds, rng)),
        "hum": ("other", hum(seconds, rng)),
        "door_slams": ("other", clicks(seconds, rng)),
        "bird_chirps": ("other", chirps(seconds, rng)),
    }


def gunshot(background: np.ndarray, at_s: float, level_db: float = -3.0, seed: int = 5) -> np.ndarray:
    """The background with a gunshot-like burst (1 ms attack, 80 ms decay of noise) at `at_s`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * SR)) / SR
    burst = rng.standard_normal(len(t)) * np.minimum(t / 0.001, 1) * np.exp(-t / 0.08)
    out = background.copy()
    start = int(at_s * SR)
    out[start:start + len(t)] += burst[:len(out) - start] * 10 ** (level_db / 20)
    return out


def vad_probabilities(clips: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Silero's per-32 ms speech probabilities of each clip (as the audio pipeline computes them)."""
    from udfs.models import read_manifest
    from udfs.vad import VoiceActivity

    spec = read_manifest(REPO_ROOT / "models" / "audio" / "manifest.json")["vad"]
    vad = VoiceActivity(SHARED_DATA / "models", spec)
    return {name: vad.probabilities([samples], SR)[0] for name, (_, samples) in clips.items()}


def accuracy(clips: dict[str, tuple[str, np.ndarray]], probs: dict[str, np.ndarray] | None) -> dict:
    """Per-clip share of seconds given the expected class, their class counts, and the confusion
    matrix over all seconds (rows: expected, columns: given)."""
    per_clip, matrix = {}, {want: dict.fromkeys(CLASSES, 0) for want in CLASSES}
    for name, (want, samples) in clips.items():
        seconds = profile(samples, SR, None if probs is None else probs[name]).seconds
        counts = {c: seconds.count(c) for c in CLASSES if seconds.count(c)}
        per_clip[name] = {"expected": want, "seconds": len(seconds),
                          "accuracy": round(seconds.count(want) / max(len(seconds), 1), 3), "given": counts}
        for got, n in counts.items():
            matrix[want][got] += n
    total = sum(sum(row.values()) for row in matrix.values())
    right = sum(matrix[c][c] for c in CLASSES)
    return {"per_clip": per_clip, "confusion": matrix, "overall": round(right / max(total, 1), 3)}


def streamed(samples: np.ndarray, chunk: int, probs: np.ndarray | None = None) -> object:
    tracker = SoundTracker(SR)
    per_chunk = None if probs is None else len(probs) * chunk / len(samples)
    for i, start in enumerate(range(0, len(samples), chunk)):
        window = None if probs is None else probs[round(i * per_chunk):round((i + 1) * per_chunk)]
        tracker.push(samples[start:start + chunk], window)
    return tracker.finish()


def costs(samples: np.ndarray, iterations: int) -> dict[str, dict[str, float]]:
    """Milliseconds per 10 s of 16 kHz audio: one-shot, streamed in 0.5 s chunks, and with VAD."""
    ten = samples[:10 * SR]
    probs = np.full(-(-len(ten) // 512), 0.3, dtype=np.float32)
    calls = {"profile": lambda: profile(ten, SR), "profile_with_vad": lambda: profile(ten, SR, probs),
             "stream_0.5s_chunks": lambda: streamed(ten, SR // 2)}
    for call in calls.values():
        call()  # warm-up: the mel filter bank, numpy's FFT plans
    return {name: percentiles([timed(call) for _ in range(iterations)]) for name, call in calls.items()}


def tempi(clips: dict[str, tuple[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Our tempo of each music clip beside librosa's beat tracker on the same 16 kHz audio."""
    import librosa

    return {name: {"ours": profile(samples, SR).features["tempo_bpm"],
                   "librosa": round(float(np.atleast_1d(librosa.beat.beat_track(y=samples, sr=SR)[0])[0]), 1)}
            for name, (want, samples) in clips.items() if want == "music"}


def rates() -> dict[str, dict[str, dict[str, float]]]:
    """Class shares of a few clips decoded at 8, 16 and 44.1 kHz (features are read natively)."""
    paths = {"vibeace": LIBROSA / MUSIC["vibeace"], "brahms": LIBROSA / MUSIC["brahms"],
             "libri": SPEECH["libri"], "jfk": SPEECH["jfk"]}
    return {name: {str(sr): {k: v for k, v in profile(load(path, sr), sr).shares.items() if v}
                   for sr in (8000, 16000, 44100)} for name, path in paths.items()}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sounds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200, help="timed runs per measure (default 200)")
    parser.add_argument("--out", type=Path, nargs="?", const=RESULTS, help=f"also write the JSON (default {RESULTS})")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    clips = {**real_clips(), **synthetic_clips()}
    probs = vad_probabilities(clips)
    with threadpool_limits(limits=1):  # the job runs one operator per core (as bench.vision)
        one_thread = costs(clips["fishin"][1], args.iterations)
    report = {
        "cost_per_10s_audio": {"blas_threads_1": one_thread,
                               "blas_threads_default": costs(clips["fishin"][1], args.iterations)},
        "tempo_bpm": tempi(clips),
        "shares_by_rate_without_vad": rates(),
        "without_vad": accuracy(clips, None),
        "with_vad": accuracy(clips, probs),
        "host": host(),
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
