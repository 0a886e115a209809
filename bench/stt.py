"""Speech-to-text cost and accuracy: PocketSphinx (udfs/speech.py) on jfk.flac (11 s, 44.1 kHz
stereo, read once and resampled to 16 kHz mono outside the timing, as the audio pipeline hands
over 16 kHz segments).

Reports the real-time factor (processing seconds per audio second; p50/p95/p99 over repeated
runs) of `transcribe` and of a stream fed 0.5 s chunks (live first pass + whole-utterance second
pass), the per-chunk push latency, the word error rate of each against the speech's text,
keyword-spotting time and hits, and the engine's build time. `--sweep` also decodes with other
decoder settings (language weight, beams, passes) to show why the defaults stay; `--kws-sweep`
finds, for the transcript's word pairs and triples and for unrelated phrases, the strictest
threshold at which each fires (the measurement behind udfs/speech.kws_threshold).

LibriSpeech's 198-209-0000.ogg is not scored: its .txt in the shared data is a licence note,
not the transcript.

    python -m bench.stt [--iterations 10] [--warmup 1] [--chunk-s 0.5] [--sweep] [--kws-sweep]
                        [--out [bench/results/stt.json]]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf

from bench.report import emit, host, percentiles
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.speech import PocketSphinxEngine, kws_threshold, pcm16, to_rate, word_error_rate, words_of

T = TypeVar("T")
RESULTS = REPO_ROOT / "bench" / "results" / "stt.json"
JFK = SHARED_DATA / "audio" / "speech" / "jfk.flac"
WAKEWORDS = SHARED_DATA / "audio" / "wakeword"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")
TRACKED = ["ask not", "your country", "fellow americans"]
UNRELATED = ["stock market crash", "hey jane", "alexa", "breaking news", "good morning", "united states",
             "the president", "climate change", "terrorist attack", "free money", "bitcoin", "election fraud",
             "vaccine", "click here", "weather forecast", "football match", "open the door", "nuclear war",
             "interest rates", "new york", "police officer", "my name is", "happy birthday", "oil prices",
             "prime minister", "hello", "thank you", "turn off the lights"]
SWEEP: dict[str, dict[str, Any]] = {"default": {}, "lw=8": {"lw": 8.0}, "lw=10": {"lw": 10.0},
         "wide beams": {"beam": 1e-60, "wbeam": 1e-50, "pbeam": 1e-60},
         "no bestpath": {"bestpath": False}, "no fwdflat": {"fwdflat": False},
         "topn=8": {"topn": 8}, "no remove_noise": {"remove_noise": False}}


def stats(values: list[float], digits: int = 3) -> dict[str, float]:
    return percentiles(values, digits, unit="")


def timed(call: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def repeated(call: Callable[[], T], iterations: int, warmup: int) -> tuple[list[float], T]:
    """The seconds of each timed run, and the last run's result."""
    for _ in range(warmup):
        call()
    runs = [timed(call) for _ in range(iterations)]
    return [spent for spent, _ in runs], runs[-1][1]


def streamed(engine: PocketSphinxEngine, audio: np.ndarray, chunk: int, pushes: list[float]) -> tuple[str, str]:
    """The stream's last partial and final text; each push's seconds are appended to `pushes`."""
    stream = engine.stream()
    partial = ""
    for i in range(0, audio.size, chunk):
        piece = audio[i:i + chunk]
        spent, partial = timed(lambda: stream.push(piece))  # noqa: B023 (called at once)
        pushes.append(spent)
    return partial, stream.finish().text


def transcription(engine: PocketSphinxEngine, audio: np.ndarray, args: argparse.Namespace) -> dict:
    duration = audio.size / 16000
    seconds, transcript = repeated(lambda: engine.transcribe(audio), args.iterations, args.warmup)
    text = transcript.text
    return {"text": text, "wer": round(word_error_rate(JFK_TEXT, text), 3),
            "rtf": stats([s / duration for s in seconds])}


def streaming(engine: PocketSphinxEngine, audio: np.ndarray, args: argparse.Namespace) -> dict:
    duration, chunk = audio.size / 16000, int(args.chunk_s * 16000)
    pushes: list[float] = []
    seconds, (partial, final) = repeated(lambda: streamed(engine, audio, chunk, pushes), args.iterations,
                                         args.warmup)
    live = pushes[args.warmup * len(pushes) // (args.warmup + args.iterations):]
    return {"chunk_s": args.chunk_s, "final_text": final, "final_wer": round(word_error_rate(JFK_TEXT, final), 3),
            "live_text": partial, "live_wer": round(word_error_rate(JFK_TEXT, partial), 3),
            "rtf": stats([s / duration for s in seconds]),
            "live_pass_rtf": round(sum(live) / args.iterations / duration, 3),
            "push_ms": stats([s * 1000 for s in live], 2)}


def spotting(engine: PocketSphinxEngine, audio: np.ndarray, args: argparse.Namespace) -> dict:
    phrases = TRACKED + ["stock market crash", "hey jane", "hey mycroft"]
    seconds, hits = repeated(lambda: engine.spot(audio, phrases), args.iterations, args.warmup)
    wake = {}
    for path in sorted(WAKEWORDS.glob("*.wav")):
        samples, sr = sf.read(path, dtype="float32")
        wake[path.name] = [h.phrase for h in engine.spot(samples, ["hey jane", "alexa", "hey mycroft"], sr=sr)]
    return {"phrases": phrases, "unknown": {p: engine.unknown_words(p) for p in phrases if engine.unknown_words(p)},
            "thresholds": {p: f"{kws_threshold(engine.phones(p)):.0e}" for p in phrases if not engine.unknown_words(p)},
            "hits": [[h.phrase, h.start_s, h.end_s, h.score] for h in hits],
            "seconds": stats(seconds), "wake_words": wake}


def option_sweep(audio: np.ndarray) -> dict:
    out = {}
    for name, options in SWEEP.items():
        engine = PocketSphinxEngine(**options)
        seconds, transcript = timed(lambda: engine.transcribe(audio))  # noqa: B023 (called at once)
        text = transcript.text
        out[name] = {"wer": round(word_error_rate(JFK_TEXT, text), 3), "rtf": round(seconds / (audio.size / 16000), 3),
                     "text": text}
    return out


def kws_sweep(engine: PocketSphinxEngine, audio: np.ndarray) -> dict:
    """For each phrase, the strictest threshold 1e-N (N = 0..60) at which it fires in jfk.flac."""
    ref = words_of(JFK_TEXT)
    true = sorted({" ".join(ref[i:i + n]) for n in (2, 3) for i in range(len(ref) - n + 1)})
    false = [p for p in UNRELATED if not engine.unknown_words(p)]
    from pocketsphinx import Decoder

    spotter = Decoder(loglevel="FATAL", lm=None, keyphrase=true[0])
    first: dict[str, int] = {}
    for exponent in range(61):
        with tempfile.NamedTemporaryFile("w", suffix=".kws") as keyfile:
            keyfile.write("".join(f"{p} /1e-{exponent}/\n" for p in true + false))
            keyfile.flush()
            spotter.add_kws(f"sweep{exponent}", keyfile.name)
        spotter.activate_search(f"sweep{exponent}")
        spotter.start_utt()
        spotter.process_raw(pcm16(audio), full_utt=True)
        spotter.end_utt()
        for segment in spotter.seg() or ():
            first.setdefault(segment.word.strip(), exponent)
    row = {p: {"phones": engine.phones(p), "fires_at": first.get(p),
               "rule": int(-np.log10(kws_threshold(engine.phones(p))))} for p in true + false}
    return {"transcript_phrases": {p: row[p] for p in true}, "unrelated_phrases": {p: row[p] for p in false}}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=10, help="timed runs each (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--chunk-s", type=float, default=0.5, help="stream chunk length (default 0.5 s)")
    parser.add_argument("--sweep", action="store_true", help="also decode with other decoder settings")
    parser.add_argument("--kws-sweep", action="store_true", help="also measure each phrase's firing threshold")
    parser.add_argument("--audio", type=Path, default=JFK, help="speech to time (default the shared jfk.flac)")
    parser.add_argument("--out", type=Path, nargs="?", const=RESULTS, help=f"also write the JSON (default {RESULTS})")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    samples, sr = sf.read(args.audio, dtype="float32")
    audio = to_rate(samples, sr)
    build_s, engine = timed(PocketSphinxEngine)
    report: dict = {
        "audio": {"file": args.audio.name, "seconds": round(audio.size / 16000, 2), "reference": JFK_TEXT},
        "engine": {"name": "pocketsphinx", "build_s": round(build_s, 3)},
        "transcribe": transcription(engine, audio, args),
        "stream": streaming(engine, audio, args),
        "spot": spotting(engine, audio, args),
        "librispeech": "not scored: 198-209-0000.txt holds the licence note, not the transcript",
    }
    if args.sweep:
        report["options"] = option_sweep(audio)
    if args.kws_sweep:
        report["kws_sweep"] = kws_sweep(engine, audio)
    report["host"] = host()
    emit(report, args.out)


if __name__ == "__main__":
    main()
