"""The text commands: `trackius analyze text`, `trackius match`, `trackius eval sentiment|spam`.

Each runs the job's own core (udfs/text.py, udfs/query.py, udfs/classifier.py) on ContentEvents
built from its input, so what these commands measure is what the job computes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from schemas.content import ContentEvent
from schemas.errors import ConfigError
from schemas.findings import TextFindings
from schemas.rule import Rule
from trackius.settings import Settings
from udfs.query import Facts, RuleIndex, evidence_hits
from udfs.text import TextAnalyzer

BATCH = 64
SENTIMENT_THRESHOLD = 0.05  # VADER's own neutral band, used by its paper for the 3-class figures
CLASSES = ("negative", "neutral", "positive")


def analyzer(settings: Settings) -> TextAnalyzer:
    return TextAnalyzer.create(settings.max_text_chars, settings.nltk_data_dir, settings.project_model_dir)


def event_for(text: str, number: int, platform: str = "rss", author: str = "", source: str = "cli",
              lang: str | None = None) -> ContentEvent:
    return ContentEvent(f"{platform}:{number}", platform, source, author, 0, 0, text=text, lang=lang)


def analysed(core: TextAnalyzer, index: RuleIndex,
             events: Iterable[ContentEvent]) -> Iterator[tuple[ContentEvent, TextFindings]]:
    """Each event with its findings, computed in micro-batches as the job does, streaming (stdin
    may never end)."""
    batch: list[ContentEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == BATCH:
            yield from zip(batch, core.analyse_batch(batch, index))
            batch = []
    if batch:
        yield from zip(batch, core.analyse_batch(batch, index))


def match_lines(core: TextAnalyzer, query: str, lines: Iterable[str], **metadata: str | None) -> Iterator[dict]:
    """{"match", "terms"} per line: the query's terms found positively, in text order."""
    index = RuleIndex([Rule("query", 1, condition=query)])
    events = (event_for(line.rstrip("\r\n"), i, **metadata) for i, line in enumerate(lines))
    for event, findings in analysed(core, index, events):
        facts = Facts(findings, event.platform, event.author, event.source)
        fired = index.fired(facts)
        terms = [] if not fired else list(dict.fromkeys(hit.term for hit in evidence_hits(fired[0].node, facts)))
        yield {"match": bool(fired), "terms": terms}


def read_sentiment_truth(path: Path) -> list[tuple[float, str]]:
    """VADER ground truth: id<TAB>mean rating -4..4<TAB>text."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        try:
            rows.append((float(parts[1]), parts[2]))
        except (IndexError, ValueError) as exc:
            raise ConfigError(f"{path}:{number}: expected id<TAB>rating<TAB>text") from exc
    return rows


def eval_sentiment(core: TextAnalyzer, path: Path) -> dict:
    truth = read_sentiment_truth(path)
    events = (event_for(text, i) for i, (_, text) in enumerate(truth))
    predicted = [findings.sentiment.compound for _, findings in analysed(core, RuleIndex(), events)]
    expected = [rating / 4 for rating, _ in truth]
    classes_true = [_polarity(value) for value in expected]
    classes_pred = [_polarity(value) for value in predicted]
    correct = sum(t == p for t, p in zip(classes_true, classes_pred))
    return {
        "n": len(truth),
        "pearson_r": round(pearson(predicted, expected), 4),
        "accuracy": round(correct / len(truth), 4) if truth else 0.0,
        "macro_f1": round(macro_f1(classes_true, classes_pred), 4),
        "model": core.models["sentiment"],
    }


def _polarity(value: float) -> str:
    if value >= SENTIMENT_THRESHOLD:
        return "positive"
    if value <= -SENTIMENT_THRESHOLD:
        return "negative"
    return "neutral"


def pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    var_x = sum((x - mean_x) ** 2 for x in xs)
    var_y = sum((y - mean_y) ** 2 for y in ys)
    return cov / math.sqrt(var_x * var_y) if var_x and var_y else 0.0


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    scores = []
    for label in CLASSES:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)
