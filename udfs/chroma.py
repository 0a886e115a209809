"""Near-identical audio by Chromaprint (libchromaprint, through pyacoustid's ctypes binding).

A Chromaprint fingerprint is one 32-bit word per ~124 ms, each bit comparing chroma energies of
neighbouring frames and bands; two copies of the same recording (re-encoded, resampled, a little
louder) agree on most bits at the right alignment, unrelated audio on about half of them. It is
the tool for "this is that upload again", not for a short excerpt recorded through a phone in a
noisy room — that is what the landmark fingerprints (udfs/landmarks.py) are for.

Matching: every query word is looked up among all reference words (sorted postings, one
`searchsorted`), votes go to (reference, alignment), and the best alignment is checked by its bit
error rate over the whole overlap. A copy sits far below MAX_BIT_ERROR_RATE (≤ 0.10 after an MP3
or OGG round trip), unrelated audio around 0.45–0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.errors import MediaError
from udfs.audio import pcm16

ITEM_S = 4096 / 3 / 11025  # one word per ~0.124 s (Chromaprint's default algorithm)
MAX_BIT_ERROR_RATE = 0.25
MIN_OVERLAP = 24  # words (~3 s) the two must share to compare them at all
MAX_SECONDS = 120.0  # like AcoustID, fingerprint the first two minutes


@dataclass(frozen=True)
class ChromaMatch:
    clip_id: str
    name: str
    bit_error_rate: float
    offset_s: float  # where the query's start sits in the reference


def chroma_fingerprint(samples: np.ndarray, rate: int) -> np.ndarray:
    """The raw fingerprint (uint32 words) of mono float32 samples; empty for < ~3 s of audio."""
    import chromaprint

    printer = chromaprint.Fingerprinter()
    try:
        printer.start(rate, 1)
        printer.feed(pcm16(samples[: int(MAX_SECONDS * rate)]))
        encoded = printer.finish()
        words, _ = chromaprint.decode_fingerprint(encoded)
    except chromaprint.FingerprintError as exc:
        raise MediaError("internal", f"chromaprint failed: {exc}") from exc
    return np.asarray(words, dtype=np.int64).astype(np.uint32)


def bit_error_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Share of differing bits between two equally long word arrays."""
    differing = np.unpackbits((a ^ b).view(np.uint8)).sum()
    return float(differing) / (32 * len(a))


class ChromaIndex:
    """Reference fingerprints, matched by word-alignment voting and a bit-error check."""

    def __init__(self, max_bit_error_rate: float = MAX_BIT_ERROR_RATE) -> None:
        self.max_bit_error_rate = max_bit_error_rate
        self._clips: dict[str, tuple[str, np.ndarray]] = {}
        self._postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._clips)

    def add(self, clip_id: str, name: str, words: np.ndarray) -> None:
        self._clips[clip_id] = (name, np.asarray(words, dtype=np.uint32))
        self._postings = None

    def remove(self, clip_id: str) -> None:
        if self._clips.pop(clip_id, None) is not None:
            self._postings = None

    def match(self, words: np.ndarray) -> ChromaMatch | None:
        if len(words) < MIN_OVERLAP or not self._clips:
            return None
        values, slots, positions = self._index()
        left = np.searchsorted(values, words, side="left")
        right = np.searchsorted(values, words, side="right")
        sizes = right - left
        if not sizes.sum():
            return None
        where = np.repeat(left - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
        query_pos = np.repeat(np.arange(len(words)), sizes)
        keys = slots[where].astype(np.int64) * 1_000_000 + (positions[where] - query_pos + 500_000)
        found, counts = np.unique(keys, return_counts=True)
        for key in found[np.argsort(-counts)[:3]]:  # the few best alignments, checked exactly
            checked = self._check(int(key // 1_000_000), int(key % 1_000_000) - 500_000, words)
            if checked is not None:
                return checked
        return None

    def _check(self, slot: int, shift: int, words: np.ndarray) -> ChromaMatch | None:
        clip_id = self._ids[slot]
        name, ref = self._clips[clip_id]
        start_q, start_r = max(0, -shift), max(0, shift)
        overlap = min(len(words) - start_q, len(ref) - start_r)
        if overlap < MIN_OVERLAP:
            return None
        rate = bit_error_rate(words[start_q:start_q + overlap], ref[start_r:start_r + overlap])
        if rate > self.max_bit_error_rate:
            return None
        return ChromaMatch(clip_id, name, round(rate, 4), round(shift * ITEM_S, 3))

    def _index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._postings is None:
            self._ids = list(self._clips)
            arrays = [self._clips[clip_id][1] for clip_id in self._ids]
            values = np.concatenate(arrays)  # only reached with references
            slots = np.concatenate([np.full(len(a), i, np.int32) for i, a in enumerate(arrays)])
            positions = np.concatenate([np.arange(len(a), dtype=np.int64) for a in arrays])
            order = np.argsort(values, kind="stable")
            self._postings = (values[order], slots[order], positions[order])
        return self._postings
