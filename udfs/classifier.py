"""Spam/scam probability of short texts from the project's ONNX model, and its evaluation.

scripts/train_spam.py trains the model and commits it under models/spam/ beside a manifest that
pins its sha256, its input and output, the decision threshold and the held-out metrics. Loading
checks the file against the manifest; a missing or mismatched model disables the classifier with
one warning instead of stopping the job, because spam scoring is an extra finding, not the
alert path. The tokenisation lives inside the ONNX graph, so the runtime hands it raw strings.

`read_labelled` and `evaluate` are shared by the training script and `trackius eval spam`, so
the committed metrics and a later evaluation are computed by the same code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import ModelError
from udfs.onnx import Session

LABELS = ("ham", "spam")
MANIFEST = "manifest.json"
# The model learnt from SMS (at most ~900 characters), and the ONNX tokeniser pads every row of a
# batch to the longest one, so a single huge text would cost the whole batch its length.
MAX_CHARS = 2_000
EVAL_CHUNK = 256
Z95 = 1.959963984540054

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Manifest:
    """The fields of manifest.json that the runtime relies on."""

    file: str
    sha256: str
    threshold: float
    output: str
    column: int

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        output = raw["output"]
        return cls(
            file=str(raw["file"]),
            sha256=str(raw["sha256"]),
            threshold=float(raw["threshold"]),
            output=str(output["name"]),
            column=int(output["column"]),
        )


class SpamClassifier:
    def __init__(
        self,
        session: Session,
        threshold: float,
        model_id: str,
        output: str = "probabilities",
        column: int = 1,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self._session = session
        self._input = session.inputs[0][0]
        self._output = output
        self._column = column
        self._threshold = threshold
        self._model_id = model_id
        self.max_chars = max_chars

    @classmethod
    def load(cls, model_dir: Path, max_chars: int = MAX_CHARS) -> SpamClassifier | None:
        """The verified model in `model_dir/spam`, or None (and one warning) if it is unusable."""
        try:
            return cls.from_model(*read_verified(model_dir / "spam"), max_chars=max_chars)
        except ModelError as exc:
            _log.warning("spam classifier disabled: %s", exc)
            return None

    @classmethod
    def from_model(
        cls, manifest: Manifest, model: bytes, max_chars: int = MAX_CHARS
    ) -> SpamClassifier:
        """The classifier of these model bytes, already checked against the manifest's sha256."""
        return cls(
            Session(model),
            manifest.threshold,
            f"spam-{manifest.sha256[:12]}",
            output=manifest.output,
            column=manifest.column,
            max_chars=max_chars,
        )

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def model_id(self) -> str:
        return self._model_id

    def score(self, texts: Sequence[str]) -> list[float]:
        """Spam probability of each text, from one run of the model over the whole batch."""
        if not texts:
            return []
        batch = np.array([_prepare(text, self.max_chars) for text in texts], dtype=object)
        (probabilities,) = self._session.run([self._output], {self._input: batch.reshape(-1, 1)})
        return [float(p) for p in probabilities[:, self._column]]

    def is_spam(self, score: float) -> bool:
        return score >= self._threshold


def _prepare(text: str, max_chars: int) -> str:
    # onnxruntime cannot encode lone surrogates (they do reach us from JSON), so they become "?".
    return text[:max_chars].encode("utf-8", "replace").decode("utf-8")


def read_verified(spam_dir: Path) -> tuple[Manifest, bytes]:
    """The manifest and the model bytes, after checking the bytes against the manifest's sha256."""
    manifest_path = spam_dir / MANIFEST
    try:
        manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
        model_path = spam_dir / manifest.file
        model = model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{exc.filename}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{manifest_path}: unusable manifest ({exc!r})") from exc
    actual = sha256_of(model)
    if actual != manifest.sha256:
        mismatch = f"sha256 {actual[:12]}… does not match manifest {manifest.sha256[:12]}…"
        raise ModelError(f"{model_path}: {mismatch}")
    return manifest, model


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(label, text) pairs of a `label<TAB>text` file; malformed lines are skipped and counted."""
    pairs = []
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            label, tab, text = line.rstrip("\r\n").partition("\t")
            if tab and label in LABELS:
                pairs.append((label, text))
            elif line.strip():
                skipped += 1
    if skipped:
        _log.warning("%s: skipped %d malformed lines (no tab or unknown label)", path, skipped)
    return pairs


def evaluate(classifier: SpamClassifier, labelled: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Accuracy, precision, recall and false-positive rate (spam is positive), with 95% Wilson
    intervals and the confusion counts."""
    pairs = list(labelled)
    texts = [text for _, text in pairs]
    # Chunks keep the padded token tensor small; scores do not depend on how texts are batched.
    scores: list[float] = []
    for start in range(0, len(texts), EVAL_CHUNK):
        scores.extend(classifier.score(texts[start : start + EVAL_CHUNK]))
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for (label, _), score in zip(pairs, scores):
        spam = label == "spam"
        if classifier.is_spam(score):
            counts["tp" if spam else "fp"] += 1
        else:
            counts["fn" if spam else "tn"] += 1
    return _metrics(**counts)


def _metrics(tp: int, fp: int, tn: int, fn: int) -> dict[str, Any]:
    rates = {
        "accuracy": (tp + tn, tp + fp + tn + fn),
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "false_positive_rate": (fp, fp + tn),
    }
    return {
        "n": tp + fp + tn + fn,
        **{name: _ratio(hits, total) for name, (hits, total) in rates.items()},
        "ci95": {name: wilson(hits, total) for name, (hits, total) in rates.items()},
        "counts": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def _ratio(hits: int, total: int) -> float:
    return round(hits / total, 6) if total else 0.0


def wilson(hits: int, total: int, z: float = Z95) -> list[float]:
    """Wilson score interval [low, high] of the proportion hits/total ([0, 1] when total is 0)."""
    if total == 0:
        return [0.0, 1.0]
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]
