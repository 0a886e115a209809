"""Train the spam/scam classifier of short messages and export it as ONNX with its manifest.

    .venv/bin/python scripts/train_spam.py [--data PATH] [--out models/spam] [--seed 13]
                                           [--test-fraction 0.25]

A seeded stratified split keeps a test part on which nothing is chosen: the threshold comes from
out-of-fold probabilities on the training part, and the hyperparameters below were compared by
5-fold cross-validation on the training part only. The test metrics are measured by the
runtime's own classifier (udfs.classifier) on the exported bytes through onnxruntime, so they
describe what the job runs. The last line printed is a JSON object of those metrics.

The features are binary TF-IDF of lower-cased word 1-2-grams and character 1-3-grams, feeding a
logistic regression. Each choice keeps sklearn and the ONNX graph computing the same features:
- token patterns that Python's re and onnxruntime's RE2 read alike (for the default pattern
  skl2onnx substitutes one that tokenises differently);
- characters as tokens of the word analyzer rather than the char analyzer, which folds runs of
  whitespace that the ONNX graph keeps;
- character n-grams starting at 1, so that the ONNX tokeniser's padding value cannot be one of
  their tokens (it is "#" otherwise, and padded rows of a batch would count n-grams ending in
  "#": a text would score differently alone and in a batch);
- binary term frequency, because skl2onnx converts sublinear_tf as log(1+tf), not 1+log(tf).

Of skl2onnx's graph the export keeps the nodes up to each TfIdfVectorizer and replaces the rest,
which worked on dense [texts, vocabulary] matrices, by the same arithmetic on two sums per part
(see replace_dense_tail): a quarter of the run time for the same probabilities.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import skl2onnx
import sklearn
from onnx import numpy_helper
from onnx.helper import make_node
from skl2onnx import to_onnx
from skl2onnx.common.data_types import StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from trackius.settings import Settings
from udfs.classifier import MANIFEST, Manifest, SpamClassifier, evaluate, read_labelled, sha256_of

DATA = Path("text_spam") / "SMSSpamCollection"
MODEL_FILE = "spam.onnx"
INPUT = "text"
OUTPUT = "probabilities"
MAX_FALSE_POSITIVE_RATE = 0.003
HYPERPARAMETERS: dict[str, Any] = {
    "words": {"token_pattern": "[a-z0-9]+", "ngram_range": [1, 2], "min_df": 2, "binary": True},
    "chars": {"token_pattern": "\\S", "ngram_range": [1, 3], "min_df": 2, "binary": True},
    "logistic_regression": {"C": 10.0, "solver": "lbfgs", "max_iter": 2000},
    "cv_folds": 5,
}
# StringNormalizer lower-cases in this locale; in "C" it would leave non-ASCII capitals as they are.
LOCALE = "C.UTF-8"
OPSETS = {"": 17, "ai.onnx.ml": 3}
# skl2onnx's nodes that read the strings, up to and including each TfIdfVectorizer.
SKL2ONNX_KEPT = {"Reshape", "StringNormalizer", "Tokenizer", "Flatten", "TfIdfVectorizer"}
NORM_FLOOR = "norm_floor"
INTERCEPT = "intercept"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    pairs = read_labelled(args.data)
    x_train, x_test, y_train, y_test = split_data(pairs, args.seed, args.test_fraction)
    # x_*: texts, y_*: "ham" | "spam"; the test part is only read again by evaluate() below
    threshold, selection = choose_threshold(x_train, y_train, args.seed)
    pipeline = build_pipeline().fit(x_train, y_train)
    model = export(pipeline)
    contract = Manifest(MODEL_FILE, sha256_of(model), threshold, OUTPUT, spam_column(pipeline))
    classifier = SpamClassifier.from_model(contract, model)
    metrics = evaluate(classifier, zip(y_test, x_test))
    manifest = {
        "name": "spam",
        "file": contract.file,
        "sha256": contract.sha256,
        "input": {"name": INPUT, "dtype": "string", "shape": [None, 1], "locale": LOCALE},
        "output": {"name": OUTPUT, "column": contract.column, "classes": list(pipeline.classes_)},
        "threshold": threshold,
        "threshold_selection": selection,
        "data": data_record(args.data, args.data_dir, len(pairs)),
        "split": split_record(args, y_train, y_test),
        "hyperparameters": HYPERPARAMETERS,
        "metrics": metrics,
        "onnx_vs_sklearn": agreement(pipeline, classifier, list(x_test)),
        "versions": versions(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MODEL_FILE).write_bytes(model)
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return metrics


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings.data_dir / DATA)
    parser.add_argument("--out", type=Path, default=settings.project_model_dir / "spam")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    args = parser.parse_args(argv)
    args.data_dir = settings.data_dir
    return args


def split_data(pairs: list[tuple[str, str]], seed: int, test_fraction: float) -> list[np.ndarray]:
    """x_train, x_test, y_train, y_test: a seeded split keeping the share of spam in both parts."""
    texts = np.array([text for _, text in pairs], dtype=object)
    labels = np.array([label for label, _ in pairs], dtype=object)
    return train_test_split(
        texts, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )


def build_pipeline() -> Pipeline:
    words, chars, regression = (
        HYPERPARAMETERS[key] for key in ("words", "chars", "logistic_regression")
    )
    features = FeatureUnion([("words", vectorizer(words)), ("chars", vectorizer(chars))])
    return Pipeline([("features", features), ("classifier", LogisticRegression(**regression))])


def vectorizer(params: dict[str, Any]) -> TfidfVectorizer:
    return TfidfVectorizer(**{**params, "ngram_range": tuple(params["ngram_range"])})


def spam_column(pipeline: Pipeline) -> int:
    return list(pipeline.classes_).index("spam")


def choose_threshold(
    texts: np.ndarray, labels: np.ndarray, seed: int
) -> tuple[float, dict[str, Any]]:
    """The threshold that flags at most MAX_FALSE_POSITIVE_RATE of the ham in out-of-fold
    probabilities of the training part, and what it achieves there."""
    folds = StratifiedKFold(HYPERPARAMETERS["cv_folds"], shuffle=True, random_state=seed)
    probabilities = cross_val_predict(
        build_pipeline(), texts, labels, cv=folds, method="predict_proba"
    )
    scores = probabilities[:, sorted(set(labels)).index("spam")]
    spam = labels == "spam"
    threshold = threshold_for(scores[~spam], MAX_FALSE_POSITIVE_RATE)
    flagged = scores >= threshold
    return threshold, {
        "method": "out-of-fold probabilities of stratified cv_folds-fold cross-validation"
        " on the training part",
        "max_false_positive_rate": MAX_FALSE_POSITIVE_RATE,
        "out_of_fold": {
            "false_positive_rate": round(float(flagged[~spam].mean()), 6),
            "recall": round(float(flagged[spam].mean()), 6),
        },
    }


def threshold_for(ham_scores: np.ndarray, max_rate: float) -> float:
    """Halfway between the last ham score allowed to reach the threshold and the first that must
    stay below it: a margin both ways, as the final model learns from more data than each fold."""
    allowed = math.floor(max_rate * len(ham_scores))
    ranked = np.concatenate([[1.0], np.sort(ham_scores)[::-1]])
    above, below = ranked[allowed], ranked[allowed + 1]
    return float(max((above + below) / 2, np.nextafter(below, 1.0)))


def export(pipeline: Pipeline) -> bytes:
    """The fitted pipeline as ONNX: strings [N, 1] in, class probabilities [N, 2] out."""
    words, chars = (step for _, step in pipeline.named_steps["features"].transformer_list)
    options = {
        id(pipeline.named_steps["classifier"]): {"zipmap": False},
        id(words): {"locale": LOCALE},
        id(chars): {"locale": LOCALE},
    }
    model = to_onnx(
        pipeline,
        initial_types=[(INPUT, StringTensorType([None, 1]))],
        options=options,
        target_opset=OPSETS,
    )
    replace_dense_tail(model.graph, pipeline)
    # skl2onnx lists the opset domains in set order, which varies between processes; the tail
    # no longer uses ai.onnx.ml.
    used = {node.domain for node in model.graph.node} | {""}
    imports = sorted((o for o in model.opset_import if o.domain in used), key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(imports)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def replace_dense_tail(graph: onnx.GraphProto, pipeline: Pipeline) -> None:
    """Keep skl2onnx's string nodes up to each TfIdfVectorizer; replace what follows them.

    skl2onnx follows each vectorizer with work on dense [N, vocabulary] matrices (binarising
    Casts, idf Mul, L2 Normalizer, Concat, LinearClassifier): most of the run time, for a sum over
    the few n-grams a text has. Each part adds y.w / |y| to the logit, where y = x * idf and x is
    0/1, so y.w = x.(idf w) and |y|^2 = x.idf^2 (x^2 = x): one MatMul against a [V, 2] constant
    gives both, and the rest works on [N, 1].
    """
    keep_string_nodes(graph)
    vectorizers = [node for node in graph.node if node.op_type == "TfIdfVectorizer"]
    parts = pipeline.named_steps["features"].transformer_list
    coefficients = np.split(
        pipeline.named_steps["classifier"].coef_[0],
        np.cumsum([len(step.idf_) for _, step in parts])[:-1],
    )
    graph.initializer.append(
        numpy_helper.from_array(np.array(np.finfo(np.float32).tiny, np.float32), NORM_FLOOR)
    )
    logits = [
        part_logit(graph, node, name, step.idf_, weights)
        for node, (name, step), weights in zip(vectorizers, parts, coefficients, strict=True)
    ]
    add_probabilities(graph, logits, pipeline.named_steps["classifier"].intercept_[0])


def keep_string_nodes(graph: onnx.GraphProto) -> None:
    """Drop skl2onnx's nodes after the vectorizers, and the constants only they read."""
    kept = [node for node in graph.node if node.op_type in SKL2ONNX_KEPT]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    initializers = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def part_logit(
    graph: onnx.GraphProto, vectorizer: onnx.NodeProto, part: str, idf: np.ndarray, w: np.ndarray
) -> str:
    """This part's y.w / |y| [N, 1] from its vectorizer's output; 0 for a text without its
    n-grams, as sklearn leaves an all-zero row unnormalised (0 / sqrt(tiny), not 0 / 0)."""
    set_binary(vectorizer, len(idf))
    sums = np.stack([idf * w, idf * idf], axis=1).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(sums, f"{part}_sums_weights"))
    graph.node.extend(
        make_node(op, inputs, outputs, name=outputs[0], **attributes)
        for op, inputs, outputs, attributes in [
            ("MatMul", [vectorizer.output[0], f"{part}_sums_weights"], [f"{part}_sums"], {}),
            ("Split", [f"{part}_sums"], [f"{part}_dot", f"{part}_square"], {"axis": 1}),
            ("Max", [f"{part}_square", NORM_FLOOR], [f"{part}_square_floored"], {}),
            ("Sqrt", [f"{part}_square_floored"], [f"{part}_norm"], {}),
            ("Div", [f"{part}_dot", f"{part}_norm"], [f"{part}_logit"], {}),
        ]
    )
    return f"{part}_logit"


def set_binary(vectorizer: onnx.NodeProto, features: int) -> None:
    """IDF mode with unit weights: 1 where an n-gram occurs, as sklearn's binary tf, without the
    two Casts that binarise TF mode's counts."""
    columns = len(onnx.helper.get_attribute_value(_attribute(vectorizer, "ngram_indexes")))
    if columns != features:
        raise ValueError(f"{vectorizer.name} has {columns} columns for {features} features")
    _attribute(vectorizer, "mode").s = b"IDF"
    weights = _attribute(vectorizer, "weights").floats
    del weights[:]
    weights.extend([1.0] * columns)


def add_probabilities(graph: onnx.GraphProto, logits: list[str], intercept: float) -> None:
    """[ham, spam] probabilities [N, 2]: the logistic of -z and z, z the parts' logits summed with
    the intercept (LinearClassifier's LOGISTIC post-transform did the same)."""
    graph.initializer.extend([
        numpy_helper.from_array(np.array(intercept, dtype=np.float32), INTERCEPT),
        numpy_helper.from_array(np.array([[-1.0, 1.0]], dtype=np.float32), "class_signs"),
    ])
    graph.node.extend([
        make_node("Sum", [*logits, INTERCEPT], ["logit"], name="logit"),
        make_node("Mul", ["logit", "class_signs"], ["class_logits"], name="class_logits"),
        make_node("Sigmoid", ["class_logits"], [OUTPUT], name=OUTPUT),
    ])
    outputs = [output for output in graph.output if output.name == OUTPUT]
    del graph.output[:]
    graph.output.extend(outputs)


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto:
    return next(attribute for attribute in node.attribute if attribute.name == name)


def agreement(pipeline: Pipeline, classifier: SpamClassifier, texts: list[str]) -> dict[str, Any]:
    """How closely the ONNX model reproduces sklearn's probabilities and decisions."""
    expected = pipeline.predict_proba(np.array(texts, dtype=object))[:, spam_column(pipeline)]
    actual = np.array(classifier.score(texts))
    same = (expected >= classifier.threshold) == (actual >= classifier.threshold)
    return {
        "n": len(texts),
        "decision_agreement": round(float(same.mean()), 6),
        "max_abs_probability_difference": float(f"{np.abs(expected - actual).max():.3g}"),
    }


def data_record(path: Path, data_dir: Path, messages: int) -> dict[str, Any]:
    resolved, data_dir = path.resolve(), data_dir.resolve()
    shown = resolved.relative_to(data_dir) if resolved.is_relative_to(data_dir) else resolved
    return {"path": str(shown), "sha256": sha256_of(resolved.read_bytes()), "messages": messages}


def split_record(args: argparse.Namespace, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    return {
        "seed": args.seed,
        "test_fraction": args.test_fraction,
        "stratified": True,
        "n_train": len(train),
        "n_test": len(test),
        "train": {label: int((train == label).sum()) for label in ("ham", "spam")},
        "test": {label: int((test == label).sum()) for label in ("ham", "spam")},
    }


def versions() -> dict[str, Any]:
    return {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opsets": OPSETS,
    }


if __name__ == "__main__":
    started = time.perf_counter()
    result = main()
    elapsed = time.perf_counter() - started
    print(f"trained, exported and evaluated in {elapsed:.1f} s", file=sys.stderr)
    print(json.dumps(result))
