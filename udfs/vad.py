"""Voice activity detection with Silero VAD (ONNX): where in a piece of audio someone speaks.

The model reads fixed windows (512 samples at 16 kHz, 256 at 8 kHz), each prefixed by the last
64 (32) samples of the window before, and carries a recurrent state from window to window. It
gives one speech probability per window (32 ms). Those probabilities become segments with
hysteresis: speech starts at `threshold` and only ends after `min_silence_ms` below
`threshold - 0.15`, so a breath inside a sentence does not split it. Segments shorter than
`min_speech_ms` are dropped (clicks), the rest are widened by `pad_ms` (the model answers a little
late at onsets) and merged where they then touch.

`VoiceActivity.speech` runs several independent streams as one batch: one model call per window
step with a row per stream, shorter streams zero-padded and their extra windows ignored.
`VadStream` takes chunks of any length and keeps the model state, the context samples and the
unfinished window, so long audio is processed in bounded memory (the audio is never kept; only
4 bytes of probability per window). Both give the same numbers as running a stream on its own.

8 and 16 kHz are read natively; any other rate is resampled to 16 kHz with scipy's polyphase
filter (`scipy.signal.resample_poly`) in `speech`; `VadStream` wants 8 or 16 kHz, because a
chunk-by-chunk polyphase filter would not match the one-shot numbers at chunk edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from schemas.errors import MediaError
from udfs.audio import mono_float
from udfs.models import ModelSpec, open_model
from udfs.onnx import Session

# Samples per window and context samples per rate (the model's v5/v6 contract).
WINDOWS: dict[int, tuple[int, int]] = {16000: (512, 64), 8000: (256, 32)}
RESAMPLED_RATE = 16000
STATE_SIZE = 128
HYSTERESIS = 0.15


@dataclass(frozen=True)
class VadResult:
    speech_share: float  # the part of the audio's duration inside segments, 0..1
    segments: tuple[tuple[float, float], ...]  # (start_s, end_s), sorted, not overlapping
    frames: int  # model windows read (the last one zero-padded)


@dataclass(frozen=True)
class Hysteresis:
    """How per-window probabilities become segments (durations in milliseconds)."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    pad_ms: int = 30

    def result(self, probs: np.ndarray, samples: int, rate: int) -> VadResult:
        if samples == 0:
            return VadResult(speech_share=0.0, segments=(), frames=0)
        spans = self._spans(probs, rate)
        spans = _padded(spans, samples, self.pad_ms * rate // 1000)
        covered = sum(end - start for start, end in spans)
        return VadResult(
            speech_share=covered / samples,
            segments=tuple((start / rate, end / rate) for start, end in spans),
            frames=len(probs),
        )

    def _spans(self, probs: np.ndarray, rate: int) -> list[tuple[int, int]]:
        """Speech spans in samples, before padding."""
        size = WINDOWS[rate][0]
        quiet_windows = max(1, -(-self.min_silence_ms * rate // 1000 // size))
        low = max(self.threshold - HYSTERESIS, 0.01)
        spans: list[tuple[int, int]] = []
        start: int | None = None
        quiet_since: int | None = None
        for index, prob in enumerate(probs):
            if prob >= self.threshold:
                quiet_since = None
                start = index if start is None else start
            elif start is not None and prob < low:
                quiet_since = index if quiet_since is None else quiet_since
                if index + 1 - quiet_since >= quiet_windows:
                    spans.append((start, quiet_since))
                    start, quiet_since = None, None
        if start is not None:
            spans.append((start, len(probs)))
        shortest = self.min_speech_ms * rate // 1000
        return [(s * size, e * size) for s, e in spans if (e - s) * size >= shortest]


def _padded(spans: list[tuple[int, int]], samples: int, pad: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        start, end = max(0, start - pad), min(samples, end + pad)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > start:
            merged.append((start, end))
    return merged


class _Steps:
    """The model's recurrent state and context for B streams, advanced one window at a time."""

    def __init__(self, session: Session, rate: int, streams: int) -> None:
        self._session = session
        self._size, context = WINDOWS[rate]
        self._rate = np.array(rate, dtype=np.int64)
        self._state = np.zeros((2, streams, STATE_SIZE), dtype=np.float32)
        self._context = np.zeros((streams, context), dtype=np.float32)

    @classmethod
    def gather(cls, session: Session, singles: Sequence[_Steps]) -> _Steps:
        """One batch made of single-stream models (same rate), to step together."""
        first = singles[0]
        batch = cls.__new__(cls)
        batch._session, batch._size, batch._rate = session, first._size, first._rate
        batch._state = np.concatenate([m._state for m in singles], axis=1)
        batch._context = np.concatenate([m._context for m in singles], axis=0)
        return batch

    def scatter(self, singles: Sequence[_Steps]) -> None:
        for row, single in enumerate(singles):
            single._state = self._state[:, row:row + 1].copy()
            single._context = self._context[row:row + 1].copy()

    def step(self, windows: np.ndarray) -> np.ndarray:
        """[B, size] new samples -> [B] speech probabilities."""
        rows = np.concatenate([self._context, windows], axis=1)
        probs, self._state = self._session.run(
            ["output", "stateN"], {"input": rows, "state": self._state, "sr": self._rate})
        self._context = windows[:, -self._context.shape[1]:]
        return np.asarray(probs, dtype=np.float32).reshape(-1)


class VoiceActivity:
    """Silero VAD over batches of audio streams (numpy in, VadResult out)."""

    def __init__(self, model_dir: Path, spec: ModelSpec, threshold: float = 0.5,
                 min_speech_ms: int = 250, min_silence_ms: int = 100, pad_ms: int = 30) -> None:
        self._session = open_model(model_dir, spec)
        self.version = spec.version
        self.hysteresis = Hysteresis(threshold, min_speech_ms, min_silence_ms, pad_ms)

    def speech(self, batch: Sequence[np.ndarray], sr: int = 16000) -> list[VadResult]:
        rate = sr if sr in WINDOWS else RESAMPLED_RATE
        streams = [as_model_rate(audio, sr)[0] for audio in batch]
        probs = self.probabilities(list(streams), rate)
        return [self.hysteresis.result(p, len(s), rate) for p, s in zip(probs, streams)]

    def probabilities(self, streams: Sequence[np.ndarray], rate: int) -> list[np.ndarray]:
        """Per-window speech probabilities of mono float32 streams at 8 or 16 kHz, all streams
        in one batched model call per window step."""
        size = WINDOWS[rate][0]
        counts = [-(-len(stream) // size) for stream in streams]
        steps = max(counts, default=0)
        if steps == 0:
            return [np.zeros(0, dtype=np.float32) for _ in streams]
        padded = np.zeros((len(streams), steps * size), dtype=np.float32)
        for row, stream in enumerate(streams):
            padded[row, :len(stream)] = stream
        model = _Steps(self._session, rate, len(streams))
        out = np.stack([model.step(padded[:, i * size:(i + 1) * size]) for i in range(steps)], axis=1)
        return [out[row, :count] for row, count in enumerate(counts)]

    def stream(self, sr: int = 16000) -> VadStream:
        return VadStream(self._session, self.hysteresis, sr)

    def push_many(self, streams: Sequence[VadStream], chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
        """`stream.push(chunk)` for several streams (all at one rate), with one batched model call
        per window step: each step gathers the states of the streams that still have a window,
        runs them as one batch and scatters the new states back. Numbers equal separate pushes."""
        windows = [stream.take_windows(chunk) for stream, chunk in zip(streams, chunks)]
        counts = [len(w) for w in windows]
        out = [np.zeros(count, dtype=np.float32) for count in counts]
        done = 0
        # The set of streams with a window left only shrinks: gather once per set, not per step.
        for until in sorted(set(counts)):
            rows = [row for row, count in enumerate(counts) if count >= until]
            models = [streams[row].model for row in rows]
            batch = _Steps.gather(self._session, models)
            block = np.stack([windows[row][done:until] for row in rows], axis=1)  # [steps, B, size]
            for step in range(until - done):
                probs = batch.step(block[step])
                for row, prob in zip(rows, probs):
                    out[row][done + step] = prob
            batch.scatter(models)
            done = until
        for stream, probs in zip(streams, out):
            stream.record(probs)
        return out


class VadStream:
    """One audio stream fed in chunks of any length; `finish()` gives the same VadResult as
    `VoiceActivity.speech([whole])`."""

    def __init__(self, session: Session, hysteresis: Hysteresis, sr: int = 16000) -> None:
        if sr not in WINDOWS:
            raise MediaError("unsupported", f"streaming VAD reads 8000 or 16000 Hz audio, not {sr} Hz")
        self.model = _Steps(session, sr, 1)
        self._hysteresis = hysteresis
        self._rate = sr
        self._size = WINDOWS[sr][0]
        self._pending = np.zeros(0, dtype=np.float32)
        self._probs: list[np.ndarray] = []
        self._samples = 0
        self._finished = False

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Probabilities of the windows this chunk completed (possibly none)."""
        windows = self.take_windows(chunk)
        probs = np.array([self.model.step(window[None, :])[0] for window in windows], dtype=np.float32)
        self.record(probs)
        return probs

    def take_windows(self, chunk: np.ndarray) -> np.ndarray:
        """[n, size]: the whole windows this chunk completes; the rest waits for the next chunk."""
        if self._finished:
            raise RuntimeError("this VadStream is finished")
        samples = mono_float(chunk)
        self._samples += len(samples)
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) // self._size * self._size
        ready, self._pending = self._pending[:whole], self._pending[whole:]
        return ready.reshape(-1, self._size)

    def record(self, probs: np.ndarray) -> None:
        self._probs.append(np.asarray(probs, dtype=np.float32))

    @property
    def rate(self) -> int:
        return self._rate

    def finish(self) -> VadResult:
        if not self._finished and len(self._pending):
            tail = np.zeros(self._size, dtype=np.float32)
            tail[:len(self._pending)] = self._pending
            self.record(self.model.step(tail[None, :]))
        self._finished = True
        probs = np.concatenate(self._probs) if self._probs else np.zeros(0, dtype=np.float32)
        return self._hysteresis.result(probs, self._samples, self._rate)


def as_model_rate(audio: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """Mono float32 samples at a rate the model reads: 8 or 16 kHz as given, others to 16 kHz."""
    samples = mono_float(audio)
    if sr in WINDOWS:
        return samples, sr
    if sr <= 0:
        raise MediaError("unsupported", f"sample rate {sr} Hz is not a rate")
    from scipy.signal import resample_poly

    ratio = Fraction(RESAMPLED_RATE, sr)
    resampled = resample_poly(samples, ratio.numerator, ratio.denominator) if len(samples) else samples
    return resampled.astype(np.float32), RESAMPLED_RATE


__all__ = ["Hysteresis", "VadResult", "VadStream", "VoiceActivity", "as_model_rate"]
