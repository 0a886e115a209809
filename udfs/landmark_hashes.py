"""Landmarks, their bytes, spectral peaks and peak-pair hashes behind udfs/landmarks.py (see its
docstring).

Peaks keep a fractional frequency (parabolic interpolation of the log magnitude) so that a query
can be re-hashed as if played at another speed by scaling coordinates (f / s, t * s) instead of
re-running the STFT at each speed: one spectrogram and one peak pick per query, whatever the
number of speeds tried.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from schemas.errors import MediaError

# Changes whenever the hashing changes: stored landmarks of another version must be remade.
FINGERPRINT_VERSION = "lm2"

ANALYSIS_SR = 8000
N_FFT = 512
HOP = 256
FRAME_S = HOP / ANALYSIS_SR  # 32 ms
# Neighbourhood a peak must dominate: ~140 Hz by ~0.16 s. The former 17 x 9 gave half the hashes
# and found 15-16 of 20 noisy (10 dB) 5 s excerpts where this finds 17-19 (4 references, seed 0).
PEAK_SIZE = (9, 5)
PEAKS_PER_FRAME = 5
# A peak must exceed the frame's median log-magnitude by this much (natural log units, ~17 dB).
PEAK_MIN_ABOVE_MEDIAN = 2.0
# Queries may pick peaks differently from references. Denser query peaks (1.0 here, ~9 dB) found
# 19 instead of 17 of those 20 but tripled the postings hit (p50 170 ms at 1,000 references).
QUERY_PEAK_SIZE = PEAK_SIZE
QUERY_MIN_ABOVE_MEDIAN = 2.0
QUERY_PEAKS_PER_FRAME = PEAKS_PER_FRAME
# Tried with the phases of udfs/landmarks.py off: a 1.0 floor, alone or with a query fan-out of
# 10, lost 1-3 points of 5 s recall (more query hashes, lower confidence) at 1.5 times the time.
# Below this absolute level (relative to a full-scale sine) a frame counts as silence.
SILENCE_DB = -70.0
FAN_OUT = 6
QUERY_FAN_OUT = 6
MAX_DT = 48  # frames: ~1.5 s target zone
MAX_DF = 48  # bins: ~750 Hz either side
# Hash resolution in FFT bins (15.6 Hz) of the anchor frequency and the frequency difference.
F_STEP = 1.0
DF_STEP = 1.0
DF_BITS = 8
DT_BITS = 6
# A pair hash seen again within this many frames is dropped (a held chord repeats it each frame).
REPEAT_FRAMES = 16


@dataclass(frozen=True)
class Landmarks:
    """Hashes of peak pairs and the frame of each anchor (FRAME_S seconds per frame)."""

    hashes: np.ndarray  # uint32
    frames: np.ndarray  # int32
    duration_s: float = 0.0
    version: str = FINGERPRINT_VERSION  # of the hashing that made them; compare before matching

    def __len__(self) -> int:
        return int(self.hashes.size)


_MAGIC = b"TKLM"
_FORMAT = 1
_HEADER = struct.Struct("<4sBB")  # magic, format version, length of the fingerprint version
_SIZES = struct.Struct("<dI")  # duration in seconds, number of landmarks


def landmarks_to_bytes(marks: Landmarks) -> bytes:
    """Landmarks as bytes: magic, format version, fingerprint version, duration, count, then the
    hashes (uint32) and frames (int32), little-endian. landmarks_from_bytes reverses it exactly."""
    version = marks.version.encode()
    return b"".join((_HEADER.pack(_MAGIC, _FORMAT, len(version)), version,
                     _SIZES.pack(marks.duration_s, len(marks)),
                     marks.hashes.astype("<u4").tobytes(), marks.frames.astype("<i4").tobytes()))


def landmarks_from_bytes(data: bytes) -> Landmarks:
    """Landmarks from landmarks_to_bytes; MediaError("corrupt") on another format or short data.
    The result's `version` says which hashing made them (re-fingerprint when it is not ours)."""
    try:
        magic, fmt, length = _HEADER.unpack_from(data)
        if magic != _MAGIC or fmt != _FORMAT:
            raise MediaError("corrupt", f"not landmarks of format {_FORMAT} (magic {magic!r}, format {fmt})")
        at = _HEADER.size + length
        version = bytes(data[_HEADER.size : at]).decode()
        duration, count = _SIZES.unpack_from(data, at)
    except (struct.error, UnicodeDecodeError) as exc:
        raise MediaError("corrupt", f"landmark header unreadable: {exc}") from exc
    at += _SIZES.size
    if len(data) != at + 8 * count:
        raise MediaError("corrupt", f"{count} landmarks need {at + 8 * count} bytes, got {len(data)}")
    hashes = np.frombuffer(data, "<u4", count, at).astype(np.uint32)
    frames = np.frombuffer(data, "<i4", count, at + 4 * count).astype(np.int32)
    return Landmarks(hashes, frames, duration, version)

def analysis_rate(samples: np.ndarray, sr: float) -> np.ndarray:
    """Mono float32 at ANALYSIS_SR ((channels, samples) and (samples, channels) both averaged)."""
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0 if y.shape[0] < y.shape[1] else 1)
    if abs(sr - ANALYSIS_SR) > 1e-6 and y.size:
        import soxr  # imported here: only the audio job needs it

        y = soxr.resample(y, sr, ANALYSIS_SR, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def log_spectrogram(y: np.ndarray) -> np.ndarray:
    """(bins, frames) log magnitude, bins 1..N_FFT/2 (DC dropped)."""
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    spec = np.abs(np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1))
    return np.log(spec[:, 1:].T + 1e-6).astype(np.float32)


def peaks(logspec: np.ndarray, size: tuple[int, int] | None = None,
          min_above: float | None = None,
          per_frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frames int32, fractional bins float32) of the strongest local maxima, at most
    `per_frame` (PEAKS_PER_FRAME) a frame, sorted by frame."""
    size = size or PEAK_SIZE
    above = PEAK_MIN_ABOVE_MEDIAN if min_above is None else min_above
    floor = np.median(logspec, axis=0, keepdims=True) + above
    # Full-scale sine through a Hann window of N_FFT has magnitude ~N_FFT/4.
    silent = np.log(N_FFT / 4) + SILENCE_DB / 20 * np.log(10)
    is_peak = logspec == maximum_filter(logspec, size=size, mode="constant", cval=-np.inf)
    is_peak &= (logspec > floor) & (logspec > silent)
    strength = np.where(is_peak, logspec, -np.inf)
    k = min(per_frame or PEAKS_PER_FRAME, strength.shape[0])
    top = np.argpartition(-strength, k - 1, axis=0)[:k]
    keep = np.take_along_axis(strength, top, axis=0) > -np.inf
    frames = np.broadcast_to(np.arange(strength.shape[1]), top.shape)[keep]
    bins = top[keep]
    order = np.lexsort((bins, frames))
    frames, bins = frames[order], bins[order]
    return frames.astype(np.int32), _refine(logspec, bins, frames)


def _refine(logspec: np.ndarray, bins: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Fractional bin of each peak from a parabola through it and its two neighbours."""
    below = logspec[np.maximum(bins - 1, 0), frames]
    at = logspec[bins, frames]
    above = logspec[np.minimum(bins + 1, logspec.shape[0] - 1), frames]
    curve = below - 2 * at + above
    shift = np.where(curve < 0, 0.5 * (below - above) / np.where(curve < 0, curve, -1.0), 0.0)
    # Bin index 0 is 15.6 Hz (DC was dropped), hence the + 1: frequency scales from true zero.
    return (bins + 1 + np.clip(shift, -0.5, 0.5)).astype(np.float32)


def pairs(frames: np.ndarray, bins: np.ndarray, fan_out: int, max_dt: int,
          max_df: float, per_frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(anchor, target) indices: each peak with its `fan_out` nearest later peaks in the target
    zone, 1..`max_dt` frames later and within `max_df` bins."""
    n = frames.size
    window = (per_frame or PEAKS_PER_FRAME) * max_dt
    idx = np.arange(n)[:, None] + np.arange(1, window + 1)[None, :]
    inside = idx < n
    idx = np.minimum(idx, max(n - 1, 0))
    dt = frames[idx] - frames[:, None]
    ok = inside & (dt >= 1) & (dt <= max_dt) & (np.abs(bins[idx] - bins[:, None]) <= max_df)
    ok &= np.cumsum(ok, axis=1) <= fan_out
    anchors = np.broadcast_to(np.arange(n)[:, None], idx.shape)[ok]
    return anchors, idx[ok]


def hash_pairs(frames: np.ndarray, bins: np.ndarray, anchors: np.ndarray, targets: np.ndarray,
               speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint32, anchor frames int32) of the pairs as heard at reference speed, for audio
    played `speed` times faster: frequencies divided and times multiplied by `speed`."""
    f1 = bins[anchors] / speed
    df = (bins[targets] - bins[anchors]) / speed
    dt = np.rint((frames[targets] - frames[anchors]) * speed).astype(np.int64)
    f1q = np.rint(f1 / F_STEP).astype(np.int64)
    dfq = np.rint(df / DF_STEP).astype(np.int64) + (1 << (DF_BITS - 1))
    ok = (np.abs(df) <= MAX_DF) & (dt >= 1) & (dt <= MAX_DT)
    ok &= (dfq >= 0) & (dfq < 1 << DF_BITS)
    hashes = (f1q << (DF_BITS + DT_BITS)) | (dfq << DT_BITS) | dt
    anchor_frames = np.rint(frames[anchors] * speed).astype(np.int32)
    return _without_repeats(hashes[ok].astype(np.uint32), anchor_frames[ok])


def _without_repeats(hashes: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop a hash that already occurred at most REPEAT_FRAMES earlier: a held chord repeats its
    pair hashes every frame, which adds postings and votes but no information."""
    if REPEAT_FRAMES <= 0 or hashes.size < 2:
        return hashes, frames
    order = np.lexsort((frames, hashes))
    h, f = hashes[order], frames[order]
    repeat = np.zeros(h.size, bool)
    repeat[1:] = (h[1:] == h[:-1]) & (f[1:] - f[:-1] <= REPEAT_FRAMES)
    keep = np.sort(order[~repeat])
    return hashes[keep], frames[keep]


def best_window(key: np.ndarray, size: int) -> tuple[int, int]:
    """(key, votes) of the best pair of neighbouring keys (key and key + 1)."""
    if size <= 4 * key.size + 4096:  # a dense bincount beats sorting only when keys are dense
        counts = np.bincount(key, minlength=size + 1)
        pair = counts[:-1] + counts[1:]
        top = int(np.argmax(pair))
        return top, int(pair[top])
    keys, counts = np.unique(key, return_counts=True)
    nxt = np.minimum(np.searchsorted(keys, keys + 1), keys.size - 1)
    pair = counts + np.where(keys[nxt] == keys + 1, counts[nxt], 0)
    top = int(np.argmax(pair))
    return int(keys[top]), int(pair[top])


def posting_cap(sizes: np.ndarray, budget: int) -> int:
    """The longest posting list a query may look up so that its lookups touch at most `budget`
    postings: its rarest hashes first, since a hash common to many references carries little."""
    if int(sizes.sum()) <= budget:
        return int(sizes.max(initial=0))
    ordered = np.sort(sizes)
    fit = int(np.searchsorted(np.cumsum(ordered), budget, side="right"))
    return int(ordered[fit - 1]) if fit else 0
