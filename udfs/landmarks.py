"""Known-clip detection: landmark fingerprints of audio and an index of reference clips.

A fingerprint (Shazam-style) is a set of hashes of spectral peak pairs. Audio is resampled to
8 kHz mono, turned into a log-magnitude STFT (64 ms window, 32 ms hop), and the local maxima over a
time-frequency neighbourhood are kept, at most PEAKS_PER_FRAME per frame and only where they stand
out of the frame's median, so silence and flat noise give few peaks. Each peak (the anchor) is
paired with the FAN_OUT nearest later peaks in a target zone (1..MAX_DT frames later, within
MAX_DF bins); a pair hashes to (f1, f2 - f1, dt) packed in a uint32 and keeps the anchor's frame.

Matching looks every query hash up in an inverted index (hash -> postings of clip and frame) and
votes per clip on the offset ref_frame - query_frame: a true match piles its votes into one offset
bin, chance collisions spread over all of them. Playback at another speed scales every frequency
and time, which breaks the hashes, so `ClipIndex.match_audio` also fingerprints the query as if it
had been played at each of SPEEDS and keeps the best vote: audio played s times faster, read as if
sampled at sr / s, is back at the reference's pitch and tempo.

Measured on the shared music (n=7 clips, 6 random excerpts each, white noise at 10 dB SNR, speeds
0.95-1.05): 74-83 % of 2 s excerpts, 89-100 % of 5 s and 92-100 % of 10 s found at the right
offset (the misses are near-silent endings and repeated bars); 5 speeds instead of 9 halve the
cost and keep that on the grid, but off it (1.2 % from a grid speed) 2 s recall falls to 50 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import maximum_filter

ANALYSIS_SR = 8000
N_FFT = 512
HOP = 256
FRAME_S = HOP / ANALYSIS_SR  # 32 ms
# Neighbourhood a peak must dominate: ~250 Hz by ~0.3 s.
PEAK_SIZE = (17, 9)
PEAKS_PER_FRAME = 5
# A peak must exceed the frame's median log-magnitude by this much (natural log units, ~17 dB).
PEAK_MIN_ABOVE_MEDIAN = 2.0
# Below this absolute level (relative to a full-scale sine) a frame counts as silence.
SILENCE_DB = -70.0
FAN_OUT = 6
MAX_DT = 48  # frames: ~1.5 s target zone
MAX_DF = 48  # bins: ~750 Hz either side
# The query is also tried as if played at these speeds (1.0 first); the playback speeds handled
# are the ones within ~1 % of an entry.
SPEEDS: tuple[float, ...] = (1.0, 0.95, 0.9625, 0.975, 0.9875, 1.0125, 1.025, 1.0375, 1.05)
OFFSET_BIN = 2  # frames per offset-histogram bin (64 ms); the best bin and its neighbour count
MIN_SCORE = 10  # votes in the best offset window; unrelated audio reached 12 (at 0.8 % confidence)
# A match this strong at speed 1.0 ends the search: the other speeds cost 8 more lookups.
EARLY_EXIT_SCORE = 50
MIN_CONFIDENCE = 0.03  # votes / query hashes; unrelated audio reached 1.5 % with >= 8 votes


@dataclass(frozen=True)
class Landmarks:
    """Hashes of peak pairs and the frame of each anchor (FRAME_S seconds per frame)."""

    hashes: np.ndarray  # uint32
    frames: np.ndarray  # int32
    duration_s: float = 0.0

    def __len__(self) -> int:
        return int(self.hashes.size)


@dataclass(frozen=True)
class ClipMatch:
    """The best reference clip for a query and where in it (and in the query) they align."""

    clip_id: str
    name: str
    score: int  # votes in the best offset window
    confidence: float  # score / query hashes, in [0, 1]
    offset_s: float  # where the query's start sits in the reference
    query_offset_s: float  # first aligned moment in the query
    speed: float = 1.0  # playback speed of the query relative to the reference


def _to_analysis_rate(samples: np.ndarray, sr: float) -> np.ndarray:
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim == 2:  # (channels, samples) as librosa gives, or (samples, channels) as soundfile
        y = y.mean(axis=0 if y.shape[0] < y.shape[1] else 1)
    if abs(sr - ANALYSIS_SR) > 1e-6 and y.size:
        import librosa  # imported here: only the audio job needs it

        y = librosa.resample(y, orig_sr=sr, target_sr=ANALYSIS_SR, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def _log_spectrogram(y: np.ndarray) -> np.ndarray:
    """(bins, frames) log magnitude, bins 1..N_FFT/2 (DC dropped)."""
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    spec = np.abs(np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1))
    return np.log(spec[:, 1:].T + 1e-6).astype(np.float32)


def _peaks(logspec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, bins) of the strongest local maxima, sorted by frame."""
    floor = np.median(logspec, axis=0, keepdims=True) + PEAK_MIN_ABOVE_MEDIAN
    # Full-scale sine through a Hann window of N_FFT has magnitude ~N_FFT/4.
    silent = np.log(N_FFT / 4) + SILENCE_DB / 20 * np.log(10)
    is_peak = (logspec == maximum_filter(logspec, size=PEAK_SIZE, mode="constant", cval=-np.inf))
    is_peak &= (logspec > floor) & (logspec > silent)
    strength = np.where(is_peak, logspec, -np.inf)
    # Density limit: the PEAKS_PER_FRAME strongest of each frame.
    k = min(PEAKS_PER_FRAME, strength.shape[0])
    top = np.argpartition(-strength, k - 1, axis=0)[:k]
    keep = np.take_along_axis(strength, top, axis=0) > -np.inf
    frames = np.broadcast_to(np.arange(strength.shape[1]), top.shape)[keep]
    bins = top[keep]
    order = np.lexsort((bins, frames))
    return frames[order].astype(np.int32), bins[order].astype(np.int32)


def _pairs(frames: np.ndarray, bins: np.ndarray) -> Landmarks:
    """Pair each anchor with its FAN_OUT nearest later peaks in the target zone."""
    n = frames.size
    window = PEAKS_PER_FRAME * MAX_DT  # later peaks that can still fall inside the zone
    idx = np.arange(n)[:, None] + np.arange(1, window + 1)[None, :]
    inside = idx < n
    idx = np.minimum(idx, max(n - 1, 0))
    dt = frames[idx] - frames[:, None]
    df = bins[idx] - bins[:, None]
    ok = inside & (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF)
    ok &= np.cumsum(ok, axis=1) <= FAN_OUT
    anchor = np.broadcast_to(np.arange(n)[:, None], idx.shape)[ok]
    f1 = bins[anchor].astype(np.uint32)
    hashes = (f1 << 14) | ((df[ok] + MAX_DF).astype(np.uint32) << 6) | dt[ok].astype(np.uint32)
    return Landmarks(hashes=hashes, frames=frames[anchor].astype(np.int32))


def fingerprint(samples: np.ndarray, sr: float) -> Landmarks:
    """Landmarks of mono (or channel-averaged) audio at any sample rate; empty when too short."""
    y = _to_analysis_rate(samples, sr)
    duration = y.size / ANALYSIS_SR
    if y.size < N_FFT + HOP:
        return Landmarks(np.empty(0, np.uint32), np.empty(0, np.int32), duration)
    frames, bins = _peaks(_log_spectrogram(y))
    marks = _pairs(frames, bins)
    return Landmarks(marks.hashes, marks.frames, duration)


@dataclass
class _Postings:
    """All references' hashes sorted, with the clip slot and frame of each."""

    hashes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    slots: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    frames: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))


def _best_window(key: np.ndarray, size: int) -> tuple[int, int]:
    """(key, votes) of the best pair of neighbouring keys (key and key + 1)."""
    if size <= 1 << 26:  # a dense bincount is ~10x faster than sorting the hits
        counts = np.bincount(key, minlength=size + 1)
        pair = counts[:-1] + counts[1:]
        top = int(np.argmax(pair))
        return top, int(pair[top])
    keys, counts = np.unique(key, return_counts=True)
    nxt = np.minimum(np.searchsorted(keys, keys + 1), keys.size - 1)
    pair = counts + np.where(keys[nxt] == keys + 1, counts[nxt], 0)
    top = int(np.argmax(pair))
    return int(keys[top]), int(pair[top])


class ClipIndex:
    """Reference clips by landmark, matched by offset-consistent voting.

    Adds are batched: the sorted posting arrays are rebuilt on the first match after a change
    (seconds at 1,000 three-minute tracks), which suits a reference set that changes rarely.
    Removal only clears the clip's slot, so removed postings are skipped until the next rebuild.
    """

    def __init__(self, min_score: int = MIN_SCORE, min_confidence: float = MIN_CONFIDENCE,
                 speeds: Sequence[float] = SPEEDS,
                 early_exit_score: int = EARLY_EXIT_SCORE) -> None:
        self.min_score = min_score
        self.early_exit_score = early_exit_score
        self.min_confidence = min_confidence
        self.speeds = tuple(speeds)
        self._slot_of: dict[str, int] = {}
        self._clips: list[tuple[str, str, Landmarks] | None] = []
        self._postings = _Postings()
        self._stale = False

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, clip_id: str, name: str, landmarks: Landmarks) -> None:
        """Index a reference clip (replacing any clip with the same id)."""
        self.remove(clip_id)
        self._slot_of[clip_id] = len(self._clips)
        self._clips.append((clip_id, name, landmarks))
        self._stale = True

    def remove(self, clip_id: str) -> None:
        """Forget a reference clip; unknown ids are ignored."""
        slot = self._slot_of.pop(clip_id, None)
        if slot is not None:
            self._clips[slot] = None

    def match(self, landmarks: Landmarks) -> ClipMatch | None:
        """The best reference for one fingerprint, or None when no clip clears the thresholds."""
        best = self._vote(landmarks)
        return self._accept(best, len(landmarks), 1.0)

    def match_audio(self, samples: np.ndarray, sr: float) -> ClipMatch | None:
        """The best reference for raw audio, trying the speeds in `speeds` in order until one
        gives a match of at least `early_exit_score` votes."""
        best: ClipMatch | None = None
        for speed in self.speeds:
            marks = fingerprint(samples, sr / speed)
            found = self._accept(self._vote(marks), len(marks), speed)
            if found is not None and (best is None or found.score > best.score):
                best = found
            if best is not None and best.score >= self.early_exit_score:
                break
        return best

    def _accept(self, vote: tuple[int, int, int, int] | None, n_query: int,
                speed: float) -> ClipMatch | None:
        if vote is None or n_query == 0:
            return None
        slot, score, ref_frame, query_frame = vote
        confidence = min(1.0, score / n_query)
        if score < self.min_score or confidence < self.min_confidence:
            return None
        entry = self._clips[slot]
        assert entry is not None  # removed slots never vote
        # Query frames were counted at the undone speed: real query time runs `speed` times faster.
        query_s = query_frame * FRAME_S / speed
        return ClipMatch(entry[0], entry[1], score, round(confidence, 4),
                         (ref_frame - query_frame) * FRAME_S, query_s, speed)

    def _vote(self, query: Landmarks) -> tuple[int, int, int, int] | None:
        """(slot, votes, ref frame, query frame) of the best clip and offset, or None."""
        if self._stale:
            self._rebuild()
        slots, offsets, q_frames = self._hits(query)
        if slots.size == 0:
            return None
        # Votes per (clip, offset bin); a true offset may straddle two bins, so pairs of
        # neighbouring bins are scored and the best pair wins.
        bins = offsets // OFFSET_BIN
        lo = int(bins.min())
        width = int(bins.max()) - lo + 2
        key = slots.astype(np.int64) * width + (bins - lo)
        top, votes = _best_window(key, len(self._clips) * width)
        slot = top // width
        in_window = (key == top) | (key == top + 1)
        offset = int(np.round(np.median(offsets[in_window])))
        first = int(q_frames[in_window].min())
        return slot, votes, offset + first, first

    def _hits(self, query: Landmarks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clip slot, ref frame - query frame, query frame) of every posting a query hash hits."""
        post = self._postings
        left = np.searchsorted(post.hashes, query.hashes, side="left")
        right = np.searchsorted(post.hashes, query.hashes, side="right")
        sizes = right - left
        total = int(sizes.sum())
        if total == 0:
            return (np.empty(0, np.int32),) * 3  # type: ignore[return-value]
        # Expand every [left, right) range into posting indices without a Python loop.
        starts = np.repeat(left - np.cumsum(sizes) + sizes, sizes)
        where = starts + np.arange(total)
        q_frames = np.repeat(query.frames, sizes)
        slots = post.slots[where]
        alive = self._alive()[slots]
        offsets = post.frames[where] - q_frames
        return slots[alive], offsets[alive], q_frames[alive]

    def _alive(self) -> np.ndarray:
        return np.array([c is not None for c in self._clips], dtype=bool)

    def _rebuild(self) -> None:
        live = [(slot, c[2]) for slot, c in enumerate(self._clips) if c is not None]
        if not live:
            self._postings, self._stale = _Postings(), False
            return
        hashes = np.concatenate([m.hashes for _, m in live])
        frames = np.concatenate([m.frames for _, m in live])
        slots = np.concatenate([np.full(len(m), s, np.int32) for s, m in live])
        order = np.argsort(hashes, kind="stable")
        self._postings = _Postings(hashes[order], slots[order], frames[order])
        self._stale = False
