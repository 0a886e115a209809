"""Unit tests of the spam classifier: the committed model and its manifest, scoring, loading that
degrades to None, the shared reader and metrics, and the training script that reproduces it all."""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx
import pytest
from onnx import numpy_helper
from scipy.stats import binomtest

from trackius.settings import Settings
from udfs.classifier import SpamClassifier, evaluate, read_labelled, sha256_of, wilson

SETTINGS = Settings.from_env()
MODEL_DIR = SETTINGS.project_model_dir
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_spam.py"
LogCapture = pytest.LogCaptureFixture


def committed_manifest() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "spam" / "manifest.json").read_text(encoding="utf-8"))


def data_file() -> Path:
    path = SETTINGS.data_dir / committed_manifest()["data"]["path"]
    if not path.is_file():
        pytest.fail(f"spam data missing: {path} (provide ../shared/data or set TRACKIUS_DATA_DIR)")
    return path


@functools.cache
def train_spam() -> ModuleType:
    """scripts/train_spam.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("train_spam", TRAIN_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def classifier() -> SpamClassifier:
    loaded = SpamClassifier.load(MODEL_DIR)
    assert loaded is not None, f"the committed model under {MODEL_DIR / 'spam'} does not load"
    return loaded


def copy_model(tmp_path: Path) -> Path:
    shutil.copytree(MODEL_DIR / "spam", tmp_path / "spam")
    return tmp_path / "spam"


# --- the committed model ----------------------------------------------------------------------


def test_committed_model_matches_its_manifest(classifier: SpamClassifier) -> None:
    """The committed ONNX file has the manifest's sha256, which names the model; same threshold."""
    manifest = committed_manifest()
    assert sha256_of((MODEL_DIR / "spam" / manifest["file"]).read_bytes()) == manifest["sha256"]
    assert classifier.model_id == f"spam-{manifest['sha256'][:12]}"
    assert classifier.threshold == manifest["threshold"]


def test_committed_model_meets_the_targets_on_the_test_split(classifier: SpamClassifier) -> None:
    """Through onnxruntime the committed file gives the manifest's test metrics; they meet targets."""
    manifest = committed_manifest()
    data_sha256 = sha256_of(data_file().read_bytes())
    assert data_sha256 == manifest["data"]["sha256"], "the data file is not the one trained on"
    split = manifest["split"]
    _, x_test, _, y_test = train_spam().split_data(
        read_labelled(data_file()), split["seed"], split["test_fraction"]
    )
    metrics = evaluate(classifier, zip(y_test, x_test))
    assert metrics == manifest["metrics"]
    assert metrics["n"] == split["n_test"]
    assert metrics["accuracy"] >= 0.985 and metrics["false_positive_rate"] <= 0.005


# --- scoring ----------------------------------------------------------------------------------


def test_batch_scores_equal_single_scores(classifier: SpamClassifier) -> None:
    """A text scores the same alone as in a batch of longer and shorter texts (padding adds none)."""
    texts = [text for _, text in read_labelled(data_file())[:60]]
    texts += ["", "#", "# # #", "FREE entry!! txt WIN to 80086 #prize"]
    batch = classifier.score(texts)
    alone = [classifier.score([text])[0] for text in texts]
    assert batch == pytest.approx(alone, abs=1e-6)
    assert [classifier.is_spam(s) for s in batch] == [classifier.is_spam(s) for s in alone]


UNUSUAL = {
    "empty": "",
    "whitespace": "   \n\t ",
    "emoji": "😀🎉🔥",
    "punctuation": "!!! ??? ...",
    "surrogate": "lone \ud800 surrogate",
    "nul": "nul\x00byte",
    "1MB": "x " * 500_000,
}


@pytest.mark.parametrize("text", UNUSUAL.values(), ids=UNUSUAL.keys())
def test_unusual_texts_score_without_error(classifier: SpamClassifier, text: str) -> None:
    """Texts without tokens, with characters UTF-8 cannot encode, or of 1 MB get a probability."""
    (score,) = classifier.score([text])
    assert 0.0 <= score <= 1.0


def test_texts_without_tokens_are_not_spam(classifier: SpamClassifier) -> None:
    """Empty, emoji-only and punctuation-only texts stay below the threshold."""
    assert not any(classifier.is_spam(s) for s in classifier.score(["", "😀🎉🔥", "!!! ???"]))


def test_texts_without_known_ngrams_score_the_intercept(classifier: SpamClassifier) -> None:
    """A text with none of the model's n-grams gets the logistic of the intercept alone, as sklearn
    leaves an all-zero row unnormalised (the graph divides 0 by a floored norm, never 0 by 0)."""
    model = onnx.load(MODEL_DIR / "spam" / committed_manifest()["file"])
    (intercept,) = (
        float(numpy_helper.to_array(tensor))
        for tensor in model.graph.initializer
        if tensor.name == train_spam().INTERCEPT
    )
    expected = 1 / (1 + math.exp(-intercept))
    assert classifier.score(["", "   \n\t ", "😀🎉🔥"]) == pytest.approx([expected] * 3, abs=1e-7)


def test_committed_graph_has_no_dense_tail() -> None:
    """After the vectorisers the graph works on [N, 2] sums, not on [N, vocabulary] matrices."""
    manifest = committed_manifest()
    model = onnx.load(MODEL_DIR / "spam" / manifest["file"])
    ops = {node.op_type for node in model.graph.node}
    assert ops.isdisjoint({"Cast", "Normalizer", "Concat", "LinearClassifier"})
    assert [output.name for output in model.graph.output] == [manifest["output"]["name"]]


def test_long_texts_are_scored_on_their_beginning(classifier: SpamClassifier) -> None:
    """Only the first max_chars characters count, so one huge text cannot slow a whole batch."""
    start = "WINNER! Claim your £1000 prize, call 09061701461 now. "
    text = start * 40_000
    assert classifier.score([text]) == classifier.score([text[: classifier.max_chars]])


def test_empty_batch_scores_to_empty_list(classifier: SpamClassifier) -> None:
    """No texts, no run, no scores."""
    assert classifier.score([]) == []


def test_obvious_spam_and_ham_are_told_apart(classifier: SpamClassifier) -> None:
    """A prize-claim message is flagged; an everyday message is not."""
    spam, ham = classifier.score([
        "URGENT! You have WON a guaranteed £1000 cash prize. Call 09061701461 now to claim.",
        "ok see you at lunch tomorrow, I'll bring the book",
    ])
    assert classifier.is_spam(spam) and not classifier.is_spam(ham)


# --- loading degrades to None with one warning ------------------------------------------------


def assert_disabled_once(model_dir: Path, caplog: LogCapture, reason: str) -> None:
    with caplog.at_level(logging.WARNING, logger="udfs.classifier"):
        assert SpamClassifier.load(model_dir) is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("spam classifier disabled: ")
    assert reason in warnings[0].getMessage()


def test_missing_model_file_disables_the_classifier(tmp_path: Path, caplog: LogCapture) -> None:
    """Without the ONNX file, load returns None and warns once, naming the file."""
    (copy_model(tmp_path) / "spam.onnx").unlink()
    assert_disabled_once(tmp_path, caplog, "spam.onnx: No such file or directory")


def test_missing_manifest_disables_the_classifier(tmp_path: Path, caplog: LogCapture) -> None:
    """Without a manifest, load returns None and warns once, naming the manifest."""
    assert_disabled_once(tmp_path, caplog, "manifest.json: No such file or directory")


def test_wrong_sha256_disables_the_classifier(tmp_path: Path, caplog: LogCapture) -> None:
    """A model whose bytes do not match the manifest's sha256 is refused with one warning."""
    spam_dir = copy_model(tmp_path)
    manifest = committed_manifest() | {"sha256": "0" * 64}
    (spam_dir / "manifest.json").write_text(json.dumps(manifest))
    assert_disabled_once(tmp_path, caplog, "does not match manifest 000000000000")


def test_malformed_manifest_disables_the_classifier(tmp_path: Path, caplog: LogCapture) -> None:
    """A manifest that is not JSON, or lacks a field, is refused with one warning."""
    (copy_model(tmp_path) / "manifest.json").write_text("{not json")
    assert_disabled_once(tmp_path, caplog, "unusable manifest")


# --- reader and metrics -----------------------------------------------------------------------


def test_read_labelled_skips_and_counts_malformed_lines(tmp_path: Path, caplog: LogCapture) -> None:
    """Lines without a tab or with an unknown label are skipped and counted; text keeps its tabs."""
    path = tmp_path / "labelled.tsv"
    path.write_bytes(
        b"ham\thi there\r\nspam\tWIN\tnow\nno tab here\neggs\tunknown label\n\nham\t\xff\n"
    )
    with caplog.at_level(logging.WARNING, logger="udfs.classifier"):
        pairs = read_labelled(path)
    assert pairs == [("ham", "hi there"), ("spam", "WIN\tnow"), ("ham", "\ufffd")]
    assert "skipped 2 malformed lines" in caplog.text


class FixedScores:
    """A stand-in classifier that flags a text when it contains "!"."""

    threshold = 0.5

    def score(self, texts: list[str]) -> list[float]:
        return [1.0 if "!" in text else 0.0 for text in texts]

    def is_spam(self, score: float) -> bool:
        return score >= self.threshold


def test_evaluate_counts_rates_and_intervals() -> None:
    """Spam is the positive class; each rate comes with its Wilson interval and the counts."""
    labelled = [
        ("spam", "a!"), ("spam", "b!"), ("spam", "c"),
        ("ham", "d!"), ("ham", "e"), ("ham", "f"),
    ]
    metrics = evaluate(FixedScores(), labelled)  # type: ignore[arg-type]
    assert metrics["counts"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert (metrics["n"], metrics["accuracy"], metrics["precision"]) == (6, 0.666667, 0.666667)
    assert (metrics["recall"], metrics["false_positive_rate"]) == (0.666667, 0.333333)
    assert metrics["ci95"]["false_positive_rate"] == wilson(1, 3)


@pytest.mark.parametrize(("hits", "total"), [(0, 10), (5, 10), (10, 10), (4, 964), (147, 151)])
def test_wilson_interval_matches_scipy(hits: int, total: int) -> None:
    """The Wilson interval equals scipy's to the six decimals kept."""
    expected = binomtest(hits, total).proportion_ci(method="wilson")
    assert wilson(hits, total) == pytest.approx([expected.low, expected.high], abs=1e-6)


def test_wilson_interval_of_nothing_is_everything() -> None:
    """With no trials the interval is [0, 1] rather than a division by zero."""
    assert wilson(0, 0) == [0.0, 1.0]


# --- the training script ----------------------------------------------------------------------


def test_training_reproduces_the_committed_model(tmp_path: Path) -> None:
    """Retraining gives the committed threshold and test metrics (measured through onnxruntime)."""
    committed = committed_manifest()
    metrics = train_spam().main(["--data", str(data_file()), "--out", str(tmp_path)])
    retrained = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert metrics == retrained["metrics"] == committed["metrics"]
    assert retrained["threshold"] == pytest.approx(committed["threshold"], rel=1e-9)
    assert retrained["split"] == committed["split"] and retrained["data"] == committed["data"]
    assert metrics["accuracy"] >= 0.985 and metrics["false_positive_rate"] <= 0.005
    assert retrained["onnx_vs_sklearn"]["decision_agreement"] == 1.0
    assert retrained["onnx_vs_sklearn"]["max_abs_probability_difference"] < 1e-5
