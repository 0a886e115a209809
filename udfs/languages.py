"""Language identification for a whole micro-batch at once, with py3langid's model (it ships in
the wheel).

py3langid walks a byte automaton over each text in a Python loop and scores the features it
visits with a naive Bayes table. Here the walk advances every text of the batch by one byte per
numpy step (texts sorted by length, so finished ones drop out of the slice), and the scoring of
all texts is one gather and one segmented sum. The decision rule is py3langid's own: probabilities
normalised with the same length temperature, script aliases folded. Tests compare the results
with py3langid's `classify` text by text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from py3langid.langid import MODEL_FILE, LanguageIdentifier

MAX_CHARS = 300  # the head of a text decides its language; longer input only costs time


class Languages:
    def __init__(self) -> None:
        model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.reference = model
        self.next_state = np.frombuffer(model.tk_nextmove, dtype=np.dtype(model.tk_nextmove.typecode)).astype(np.int32)
        self.row_base = np.asarray(model._rowbase, dtype=np.int64)
        self.output = np.asarray(model.tk_output, dtype=np.int64)
        self.table = np.asarray(model.nb_ptc, dtype=np.float32)
        self.prior = np.asarray(model.nb_pc, dtype=np.float32)
        self.labels = list(model.nb_classes)
        self.aliases = list(model._alias_pairs)

    def classify(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(ISO 639-1 code, probability) for each text."""
        if not texts:
            return []
        encoded = [LanguageIdentifier._encode(text[:MAX_CHARS]) for text in texts]
        scores = self._scores(encoded)
        lengths = np.array([max(len(data), 1) for data in encoded], dtype=np.float32)
        scores *= (1.0 / np.sqrt(lengths))[:, None]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
        for first, duplicate in self.aliases:
            scores[:, first] += scores[:, duplicate]
            scores[:, duplicate] = 0.0
        best = scores.argmax(axis=1)
        return [(self.labels[b], round(float(scores[i, b]), 4)) for i, b in enumerate(best)]

    def _scores(self, encoded: list[bytes]) -> np.ndarray:
        """Naive Bayes log-scores; a text without features scores 0 everywhere (no opinion)."""
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        lengths = [len(encoded[i]) for i in order]
        longest = lengths[0]
        data = np.zeros((len(order), max(longest, 1)), dtype=np.int64)
        for row, i in enumerate(order):
            data[row, :lengths[row]] = np.frombuffer(encoded[i], dtype=np.uint8)
        states = np.zeros(len(order), dtype=np.int64)
        visited = np.zeros_like(data)  # automaton state after each byte
        active = len(order)
        for position in range(longest):
            while lengths[active - 1] <= position:
                active -= 1
            states[:active] = self.next_state[self.row_base[states[:active]] + data[:active, position]]
            visited[:active, position] = states[:active]
        inside = np.arange(data.shape[1])[None, :] < np.array(lengths)[:, None]
        emitted = np.where(inside, self.output[visited], -1)
        text_rows, positions = np.nonzero(emitted >= 0)
        scores = np.zeros((len(order), len(self.labels)), dtype=np.float32)
        if text_rows.size:
            keys = text_rows * len(self.table) + emitted[text_rows, positions]
            keys, counts = np.unique(keys, return_counts=True)
            text_rows, columns = np.divmod(keys, len(self.table))
            weighted = np.log1p(counts.astype(np.float32))[:, None] * self.table[columns]
            starts = np.flatnonzero(np.r_[True, text_rows[1:] != text_rows[:-1]])
            scores[text_rows[starts]] = np.add.reduceat(weighted, starts, axis=0) + self.prior
        result = np.empty_like(scores)
        result[order] = scores
        return result
