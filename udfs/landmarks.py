"""Known-clip detection: landmark fingerprints of audio and an index of reference clips.

A fingerprint (Shazam-style) is a set of hashes of spectral peak pairs, made in
udfs/landmark_hashes.py: 8 kHz mono, log-magnitude STFT (64 ms window, 32 ms hop), local maxima of
a 9 x 5 (bins x frames) neighbourhood standing ~17 dB out of the frame's median, each paired with
its FAN_OUT nearest later peaks within ~1.5 s and ~750 Hz; a pair hashes (f1, f2 - f1, dt).

Speed. Audio played s times faster has every frequency times s and every time divided by s. The
query's peak coordinates are scaled (f / s, t * s) and re-hashed for each of SPEEDS (steps of
1.25 % over +-5 %); all variants vote together on (speed, clip, offset), offsets on the
reference's time axis. Phase. A peak moves when the frame grid does: a query framed half a hop
off its reference kept ~60 % of the votes, so the query is also framed at 1/3 and 2/3 of a hop
(QUERY_PHASES; 27 variants from three spectrograms). That took 5 s recall (3 seeds) from
93.9 / 97.1 / 94.3 % to 98.2 / 99.3 / 98.9 %, 2 s from ~84 % to ~91 %, at three times the lookups.

Cost. Postings are one uint32 each (clip slot << frame bits | frame) behind a direct-address
table; hashes in more than MAX_POSTINGS references are not indexed at all, and a query's lookups
touch at most MAX_TOUCHED postings (its commonest hashes skipped first). bench/audio_index.py
(2 shared cores, 10 s queries at 16 kHz, 180 s references, 120 hit and 120 miss queries):
fingerprint 6 ms p50; fingerprint + match p50/p95/p99 = 46/60/64 ms at 100 references and
84/112/126 ms at 1,000; 1,000 references take 66 MB (was 479 MB: three int32 arrays and every
posting) and build in 22 s; distorted hits found 119/120 at 100 and 101/120 at 1,000 (the
synthetic references share the real clips' hashes); 0/120 false matches at either size. Without
the phases (one framing): 20/31/33 and 31/51/59 ms, 116/120 and 102/120 found. A vote budget of
150 k postings, or a second chance (the other phases) only for a phase-0 vote short of 30,
cost 10-40 bench hits or 2-4 points of 5 s recall (an early answer picks the wrong bar of a loop).

Accuracy (trackius/audioid.evaluate: references = 4 shared music clips, negatives = 2 other music
clips, 2 speech files, 3 wake words; 10 excerpts per clip and length; a hit is the right clip
with its start within 0.5 s), seeds 0 / 1 / 2 (MIN_SCORE 14 chosen on all three; 13 let 4 2 s
excerpts of a negative through): 5 s 98.2 / 99.3 / 98.9 % of 280 (pooled CI 97.8-99.4 %; every
kind 39-40 of 40 but combined speed, noise and OGG/MP3 at 36 / 38 / 37); 2 s 93.2 / 91.1 / 90.0 %;
10 s 99.6 / 100 / 100 %; false positives 2 of 5,040 (0.04 %, CI 0.01-0.14 %). Most misses left
are Vibe Ace at another repeat of a looped bar (an equally good answer) and drum-and-bass under
noise with too few peaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from udfs import landmark_hashes as lh
from udfs.landmark_hashes import (
    FINGERPRINT_VERSION,
    FRAME_S,
    Landmarks,
    landmarks_from_bytes,
    landmarks_to_bytes,
)
from udfs.landmark_hashes import best_window as _best_window

__all__ = ["FINGERPRINT_VERSION", "SPEEDS", "ClipIndex", "ClipMatch", "Landmarks", "fingerprint",
           "landmarks_from_bytes", "landmarks_to_bytes", "query_variants"]

# The query is re-hashed as if played at each of these speeds (see match_audio).
SPEEDS: tuple[float, ...] = (1.0, 0.95, 0.9625, 0.975, 0.9875, 1.0125, 1.025, 1.0375, 1.05)
# Sample offsets (at the analysis rate) the query is also framed at: a peak's bin and frame move
# when the frame grid does, and a query framed half a hop off the reference's loses ~40 % of votes.
QUERY_PHASES = (0, lh.HOP // 3, 2 * lh.HOP // 3)
OFFSET_BIN = 2  # frames per offset-histogram bin (64 ms); the best bin and its neighbour count
# Votes, and votes / query hashes, a match needs (see the accuracy above).
MIN_SCORE = 14
MIN_CONFIDENCE = 0.0175
COARSE_BIN = 32  # frames (~1 s) per offset bin of the first voting pass
CANDIDATES = 16  # (speed, clip, coarse offset) cells counted finely
# A hash in more references is not indexed (a stop list: common hashes of tonal music cost
# most votes and carry least), and a query's lookups touch at most MAX_TOUCHED postings, its
# commonest hashes skipped first.
MAX_POSTINGS = 250
MAX_TOUCHED = 1_000_000


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
    moments: int = 0  # distinct query frames among the votes (one chord gives many votes)


def _empty(duration: float) -> Landmarks:
    return Landmarks(np.empty(0, np.uint32), np.empty(0, np.int32), duration)


def fingerprint(samples: np.ndarray, sr: float) -> Landmarks:
    """Landmarks of mono (or channel-averaged) audio at any sample rate; empty when too short."""
    y = lh.analysis_rate(samples, sr)
    duration = y.size / lh.ANALYSIS_SR
    if y.size < lh.N_FFT + lh.HOP:
        return _empty(duration)
    frames, bins = lh.peaks(lh.log_spectrogram(y))
    anchors, targets = lh.pairs(frames, bins, lh.FAN_OUT, lh.MAX_DT, lh.MAX_DF)
    hashes, anchor_frames = lh.hash_pairs(frames, bins, anchors, targets)
    return Landmarks(hashes, anchor_frames, duration)


def query_variants(samples: np.ndarray, sr: float, speeds: Sequence[float] = SPEEDS,
                   phase: int = 0) -> list[Landmarks]:
    """The query's landmarks as heard at each speed, from one spectrogram and one peak pick:
    peak coordinates are scaled (f / s, t * s) and re-hashed per speed. `phase` analysis samples
    are skipped first, so that the frames fall between those of phase 0."""
    y = lh.analysis_rate(samples, sr)[phase:]
    duration = y.size / lh.ANALYSIS_SR
    if y.size < lh.N_FFT + lh.HOP:
        return [_empty(duration) for _ in speeds]
    frames, bins = lh.peaks(lh.log_spectrogram(y), lh.QUERY_PEAK_SIZE, lh.QUERY_MIN_ABOVE_MEDIAN,
                            lh.QUERY_PEAKS_PER_FRAME)
    slowest, fastest = min(min(speeds), 1.0), max(max(speeds), 1.0)
    # The zone as seen in the query: wide enough that every speed's reference zone fits in it.
    anchors, targets = lh.pairs(frames, bins, lh.QUERY_FAN_OUT, int(np.ceil(lh.MAX_DT / slowest)),
                                lh.MAX_DF * fastest, lh.QUERY_PEAKS_PER_FRAME)
    out = []
    times = frames + phase / lh.HOP  # in reference frames
    for speed in speeds:
        hashes, anchor_frames = lh.hash_pairs(times, bins, anchors, targets, speed)
        out.append(Landmarks(hashes, anchor_frames, duration))
    return out


@dataclass
class _Postings:
    """Every reference posting, grouped by hash: postings starts[h]..starts[h + 1] of `packed`
    are hash h's, each its clip slot and frame in one word (slot << frame_bits | frame)."""

    packed: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.uint32))
    frame_bits: int = 0


@dataclass(frozen=True)
class _Vote:
    """The best (speed, clip, offset) cell of one query's vote."""

    speed_index: int
    slot: int
    votes: int
    ref_frame: int
    query_frame: int
    moments: int


class ClipIndex:
    """Reference clips by landmark, matched by offset-consistent voting.

    Adds are batched: the sorted posting arrays are rebuilt on the first match after a change
    (seconds at 1,000 three-minute tracks), which suits a reference set that changes rarely.
    Removal only clears the clip's slot, so removed postings are skipped until the next rebuild.
    """

    def __init__(self, min_score: int = MIN_SCORE, min_confidence: float = MIN_CONFIDENCE,
                 speeds: Sequence[float] = SPEEDS, phases: Sequence[int] = QUERY_PHASES,
                 all_phases_up_to: int | None = None) -> None:
        self.min_score = min_score
        self.phases = tuple(phases)  # (0,) alone: a third of the cost, ~3 points less 5 s recall
        # With more references than this, one phase only: the vote's cost grows with the index
        # (the 10 s budget holds with 3 phases at 100 references, not at 1,000). None: never.
        self.all_phases_up_to = all_phases_up_to
        self.max_touched = MAX_TOUCHED
        self.min_confidence = min_confidence
        self.speeds = tuple(speeds)
        self._slot_of: dict[str, int] = {}
        self._clips: list[tuple[str, str, Landmarks] | None] = []
        self._postings = _Postings()
        self._alive = np.zeros(0, bool)
        self._stale = False

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def nbytes(self) -> int:
        """Bytes held by the posting arrays (the index's memory, less Python overhead)."""
        return int(self._postings.packed.nbytes + self._postings.starts.nbytes)

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
            if slot < self._alive.size:
                self._alive[slot] = False

    def match(self, landmarks: Landmarks) -> ClipMatch | None:
        """The best reference for one fingerprint taken at reference speed, or None."""
        return self._best(self._vote([landmarks]), [landmarks], (1.0,))

    def match_audio(self, samples: np.ndarray, sr: float) -> ClipMatch | None:
        """The best reference for raw audio played at any of `speeds`, or None."""
        y = lh.analysis_rate(samples, sr)
        phases = self.phases_now()
        variants = [v for phase in phases for v in query_variants(y, lh.ANALYSIS_SR, self.speeds, phase)]
        return self._best(self._vote(variants), variants, self.speeds * len(phases))

    def phases_now(self) -> tuple[int, ...]:
        """The framings a query gets at the index's current size."""
        if self.all_phases_up_to is not None and len(self) > self.all_phases_up_to:
            return self.phases[:1]
        return self.phases

    def _best(self, vote: _Vote | None, variants: list[Landmarks],
              speeds: Sequence[float]) -> ClipMatch | None:
        if vote is None:
            return None
        n_query = len(variants[vote.speed_index])
        confidence = min(1.0, vote.votes / max(n_query, 1))
        if vote.votes < self.min_score or confidence < self.min_confidence:
            return None
        entry = self._clips[vote.slot]
        assert entry is not None  # removed slots never vote
        speed = speeds[vote.speed_index]
        # Query frames were scaled to reference time: real query time runs `speed` times faster.
        return ClipMatch(entry[0], entry[1], vote.votes, round(confidence, 4),
                         (vote.ref_frame - vote.query_frame) * FRAME_S,
                         vote.query_frame * FRAME_S / speed, speed, vote.moments)

    def _vote(self, variants: list[Landmarks]) -> _Vote | None:
        """The best (speed, clip, offset bin pair) over all variants' hits."""
        if self._stale:
            self._rebuild()
        which, slots, offsets, q_frames = self._hits(variants)
        if slots.size == 0:
            return None
        cell = which.astype(np.int64) * len(self._clips) + slots
        lo = int(offsets.min())
        # Coarse pass: ~1 s offset bins per (speed, clip) in one small bincount; a true match
        # puts its votes into one or two of them. Only the best few are counted finely: sorting
        # every hit (a million at 1,000 references) would cost more than the whole budget.
        coarse = (offsets - lo) // COARSE_BIN
        width = int(coarse.max()) + 2
        key = cell * width + coarse
        pair = np.bincount(key, minlength=int(key.max()) + 2)
        pair[:-1] += pair[1:]
        # Cells within half of the best; a full partial sort of ~2M cells costs 10 ms.
        tops = np.flatnonzero(pair >= (int(pair.max()) + 1) // 2)
        if tops.size > CANDIDATES:
            tops = tops[np.argpartition(-pair[tops], CANDIDATES - 1)[:CANDIDATES]]
        chosen = np.zeros(pair.size + 1, bool)
        chosen[tops] = chosen[tops + 1] = True
        near = chosen[key]
        return self._fine_vote(cell[near], offsets[near], q_frames[near])

    def _fine_vote(self, cell: np.ndarray, offsets: np.ndarray, q_frames: np.ndarray) -> _Vote:
        """Votes per (speed, clip, OFFSET_BIN) among the candidates; a true offset may straddle
        two bins, so pairs of neighbouring bins are scored and the best pair wins."""
        bins = offsets // OFFSET_BIN
        lo = int(bins.min())
        # An empty bin at both ends of each cell's row keeps a pair from spanning two cells.
        width = int(bins.max()) - lo + 3
        key = cell * width + (bins - lo) + 1
        top, votes = _best_window(key, int(cell.max() + 1) * width)
        in_window = (key == top) | (key == top + 1)
        offset = int(np.round(np.median(offsets[in_window])))
        first = int(q_frames[in_window].min())
        moments = int(np.unique(q_frames[in_window]).size)
        speed_index, slot = divmod(top // width, len(self._clips))
        return _Vote(speed_index, slot, votes, offset + first, first, moments)

    def _hits(self, variants: list[Landmarks]) -> tuple[np.ndarray, ...]:
        """(variant, clip slot, ref frame - query frame, query frame) of every posting hit."""
        hashes = np.concatenate([v.hashes for v in variants])
        q_frames = np.concatenate([v.frames for v in variants])
        which = np.repeat(np.arange(len(variants)), [len(v) for v in variants])
        post = self._postings
        # Direct addressing: starts[h]..starts[h + 1] are the postings of hash h.
        known = hashes < post.starts.size - 1
        h = np.where(known, hashes, 0).astype(np.int64)
        left = post.starts[h].astype(np.int64)
        sizes = np.where(known, post.starts[h + 1] - left, 0)
        sizes[sizes > lh.posting_cap(sizes, self.max_touched)] = 0
        total = int(sizes.sum())
        if total == 0:
            return (np.empty(0, np.int32),) * 4
        # Expand every [left, right) range into posting indices without a Python loop.
        where = np.repeat(left - np.cumsum(sizes) + sizes, sizes) + np.arange(total)
        packed = post.packed[where]
        slots = (packed >> post.frame_bits).astype(np.int64)
        alive = self._alive[slots]
        q = np.repeat(q_frames, sizes)
        offsets = (packed & ((1 << post.frame_bits) - 1)).astype(np.int32) - q
        return np.repeat(which, sizes)[alive], slots[alive], offsets[alive], q[alive]

    def _rebuild(self) -> None:
        self._alive = np.array([c is not None for c in self._clips], dtype=bool)
        live = [(slot, c[2]) for slot, c in enumerate(self._clips) if c is not None]
        if not live:
            self._postings, self._stale = _Postings(), False
            return
        hashes = np.concatenate([m.hashes for _, m in live])
        frames = np.concatenate([m.frames for _, m in live]).astype(np.int64)
        slots = np.concatenate([np.full(len(m), s, np.int64) for s, m in live])
        frame_bits = max(int(frames.max(initial=0)).bit_length(), 1)
        fits = (len(self._clips) << frame_bits) < 2**32 and frames.min(initial=0) >= 0
        order = np.argsort(hashes, kind="stable")
        sizes = np.bincount(hashes)
        order = order[np.repeat(sizes <= MAX_POSTINGS, sizes)]
        starts = np.concatenate(([0], np.cumsum(np.where(sizes <= MAX_POSTINGS, sizes, 0))))
        packed = ((slots[order] << frame_bits) | frames[order]).astype(np.uint32 if fits else np.uint64)
        dtype = np.uint32 if packed.size < 2**32 else np.uint64
        self._postings = _Postings(packed, starts.astype(dtype), frame_bits)
        self._stale = False

