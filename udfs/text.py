"""Text analysis core: VADER sentiment and the tracked terms and phrases, batch in, batch out.

Pure: no I/O, no clock. The vocabulary (every term and phrase of the active rules) is compiled
once per rule change; a text is tokenised once and each token looked up in sets, so the cost per
text grows with its length, not with the number of rules. Offsets in hits refer to the original
text; matching is case- and accent-insensitive (schemas.condition.normalize).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from schemas.condition import WORD, normalize, parse, terms_of
from schemas.content import ContentEvent
from schemas.findings import Sentiment, TermHit, TextFindings
from schemas.rule import Rule

SENTIMENT_MODEL = f"vader-{version('vaderSentiment')}"


@dataclass(frozen=True)
class Vocabulary:
    terms: frozenset[str] = frozenset()
    # first word -> the phrases starting with it (each a tuple of normalised words)
    phrases: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)

    @classmethod
    def from_rules(cls, rules: Iterable[Rule]) -> Vocabulary:
        terms: set[str] = set()
        by_first: dict[str, set[tuple[str, ...]]] = {}
        for rule in rules:
            if rule.active:
                rule_terms, rule_phrases = terms_of(parse(rule.condition))
                terms |= rule_terms
                for phrase in rule_phrases:
                    by_first.setdefault(phrase[0], set()).add(phrase)
        return cls(frozenset(terms), {k: tuple(sorted(v)) for k, v in by_first.items()})


class TextAnalyzer:
    def __init__(self, max_chars: int, sentiment: SentimentIntensityAnalyzer | None = None) -> None:
        self.max_chars = max_chars
        self.sentiment = sentiment or SentimentIntensityAnalyzer()

    def score_batch(
        self, events: Sequence[ContentEvent], vocabulary: Vocabulary, analysed_at: int = 0
    ) -> list[TextFindings]:
        return [self.score(event, vocabulary, analysed_at) for event in events]

    def score(self, event: ContentEvent, vocabulary: Vocabulary, analysed_at: int = 0) -> TextFindings:
        text = event.text[: self.max_chars]
        scores = self.sentiment.polarity_scores(text) if text else _NEUTRAL
        return TextFindings(
            content_key=event.content_key,
            sentiment=Sentiment(scores["compound"], scores["pos"], scores["neu"], scores["neg"]),
            hits=tuple(find_hits(text, vocabulary)),
            text_chars=len(event.text),
            truncated=len(event.text) > self.max_chars,
            models={"sentiment": SENTIMENT_MODEL},
            collected_at=event.collected_at,
            analysed_at=analysed_at,
        )


_NEUTRAL = {"compound": 0.0, "pos": 0.0, "neu": 1.0, "neg": 0.0}


def find_hits(text: str, vocabulary: Vocabulary) -> list[TermHit]:
    if not vocabulary.terms and not vocabulary.phrases:
        return []
    tokens = [(normalize(m.group()), m.start(), m.end()) for m in WORD.finditer(text)]
    bare = [token.lstrip("#$@") for token, _, _ in tokens]
    hits = []
    for i, (token, start, end) in enumerate(tokens):
        # "$doge" is found by the term "$doge" and by the plain term "doge"; "doge" only by "doge".
        for candidate in (token,) if token == bare[i] else (token, bare[i]):
            if candidate in vocabulary.terms:
                hits.append(TermHit(candidate, start, end))
        for phrase in vocabulary.phrases.get(bare[i], ()):
            if tuple(bare[i : i + len(phrase)]) == phrase:
                hits.append(TermHit(" ".join(phrase), start, tokens[i + len(phrase) - 1][2]))
    return hits
