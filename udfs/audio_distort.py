"""Seeded distortions of audio, for measuring known-clip detection (trackius/audioid.py).

What a re-posted clip goes through: background noise (white, or babble: several voices talking
at once), lossy re-encoding at a low bitrate (OGG Vorbis or MP3, in memory through libsndfile),
and a playback-speed change (tempo and pitch together, as resampling does). Every random choice
comes from the generator the caller passes, so the same seed gives the same audio. Pure numpy and
soundfile: nothing is written to disk.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

BABBLE_VOICES = 4
# libsndfile's scale: 0 = best quality, 1 = smallest file. 0.9 gives ~24 kbit/s MP3 and ~23 kbit/s
# Vorbis for 22 kHz mono music (measured): below the low end of what platforms re-encode to.
LOW_BITRATE = 0.9
FORMATS = {"ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
# MP3 only exists at these rates; other rates are re-encoded at the nearest one above.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _power(samples: np.ndarray) -> float:
    return float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0


def _babble(size: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    """BABBLE_VOICES voices, each a source at a random offset (looped when short) at unit power."""
    usable = [s for s in sources if s.size and _power(s) > 0]
    if not usable:
        raise ValueError("babble noise needs at least one non-silent source")
    mix = np.zeros(size, np.float64)
    for _ in range(BABBLE_VOICES):
        voice = usable[int(rng.integers(len(usable)))]
        start = int(rng.integers(voice.size))
        looped = np.take(voice, np.arange(start, start + size), mode="wrap")
        mix += looped / np.sqrt(_power(looped) or 1.0)
    return mix


def add_noise(samples: np.ndarray, sr: float, snr_db: float,
              kind: Literal["white", "babble"] = "white", rng: np.random.Generator | None = None,
              babble_sources: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Samples plus noise whose power is the samples' power less `snr_db` decibels. Babble
    sources must be mono at the same rate `sr`; silence stays silence (no signal, no SNR)."""
    del sr  # the noise has no spectral shape that depends on it; kept for a uniform signature
    rng = rng if rng is not None else np.random.default_rng(0)
    y = np.asarray(samples, np.float32)
    target = _power(y) / 10 ** (snr_db / 10)
    if kind == "white":
        noise = rng.standard_normal(y.size)
    elif kind == "babble":
        noise = _babble(y.size, rng, babble_sources)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    noise *= np.sqrt(target / (_power(noise) or 1.0))
    return (y + noise).astype(np.float32)


def reencode(samples: np.ndarray, sr: int, fmt: Literal["ogg", "mp3"] = "ogg",
             quality: float = LOW_BITRATE) -> np.ndarray:
    """The samples after a lossy round trip through `fmt` at a low bitrate, same length and rate."""
    container, subtype = FORMATS[fmt]
    y = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    rate = int(sr)
    if fmt == "mp3" and rate not in MP3_RATES:
        rate = next((r for r in MP3_RATES if r >= rate), MP3_RATES[-1])
        y = soxr.resample(y, sr, rate)
    buffer = io.BytesIO()
    sf.write(buffer, y, rate, format=container, subtype=subtype, compression_level=quality)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=False)
    if rate != int(sr):
        decoded = soxr.resample(decoded, rate, sr)
    return _fit(decoded, np.asarray(samples).size)


def _fit(y: np.ndarray, size: int) -> np.ndarray:
    """Trim or zero-pad to `size` (MP3 adds encoder delay and padding)."""
    out = np.zeros(size, np.float32)
    out[: min(size, y.size)] = y[:size]
    return out


def change_speed(samples: np.ndarray, sr: float, factor: float) -> np.ndarray:
    """The samples played `factor` times faster (pitch up and duration down for factor > 1),
    still at rate `sr`: read as if recorded at sr * factor, then resampled back to sr."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    y = np.asarray(samples, np.float32)
    return np.asarray(soxr.resample(y, sr * factor, sr, quality="HQ"), np.float32)


def excerpt(samples: np.ndarray, sr: float, seconds: float,
            rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(a random `seconds`-long stretch of the samples, its start in seconds); the whole of
    shorter audio, from 0."""
    size = round(seconds * sr)
    if samples.size <= size:
        return np.asarray(samples, np.float32), 0.0
    start = int(rng.integers(0, samples.size - size + 1))
    return np.asarray(samples[start : start + size], np.float32), start / sr


KINDS = ("white_10db", "babble_10db", "ogg", "mp3", "speed_0.95", "speed_1.05", "combined")
SNR_DB = 10.0
MAX_SPEED_CHANGE = 0.05


def distort(samples: np.ndarray, sr: int, kind: str, rng: np.random.Generator,
            babble_sources: Sequence[np.ndarray] = ()) -> np.ndarray:
    """One of KINDS (or "original"). "combined" is what a re-post goes through: a speed change
    of up to 5 % either way, then white or babble noise at 10 dB, then OGG or MP3."""
    if kind == "original":
        return np.asarray(samples, np.float32)
    if kind in ("white_10db", "babble_10db"):
        return add_noise(samples, sr, SNR_DB, "white" if kind == "white_10db" else "babble",
                         rng, babble_sources)
    if kind in ("ogg", "mp3"):
        return reencode(samples, sr, kind)
    if kind.startswith("speed_"):
        return change_speed(samples, sr, float(kind.removeprefix("speed_")))
    if kind != "combined":
        raise ValueError(f"unknown distortion {kind!r}")
    factor = float(rng.uniform(1 - MAX_SPEED_CHANGE, 1 + MAX_SPEED_CHANGE))
    noise = "babble" if babble_sources and rng.random() < 0.5 else "white"
    noisy = add_noise(change_speed(samples, sr, factor), sr, SNR_DB, noise, rng, babble_sources)
    return reencode(noisy, sr, "mp3" if rng.random() < 0.5 else "ogg")
