"""Text analysis core, batch in, batch out: the same code answers the Flink job and the CLI.

Per text, the hot path: fold to matching form, extract URLs, handles, tags and emoji, identify the
language (unless the platform declared it), split sentences, score sentiment with VADER for the
text and each sentence, and find every query term and tracked name in one scan. Per batch: the
spam/scam classifier in one ONNX run. Only when a rule that could fire on a text asks for
entity(...) are its sentences POS-tagged and chunked for names (about a millisecond per text).

Pure apart from the models it is given: no I/O and no clock (the caller passes analysed_at).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from schemas.content import ContentEvent
from schemas.errors import ModelError
from schemas.findings import Entity, SentenceSentiment, Sentiment, TextFindings
from schemas.textnorm import fold
from udfs.classifier import SpamClassifier
from udfs.languages import Languages
from udfs.nlp import Nlp
from udfs.normalize import extract, flags_of
from udfs.query import RuleIndex, Words
from udfs.sentiment import Vader

log = logging.getLogger(__name__)
SENTIMENT_MODEL = f"vader-{version('vaderSentiment')}"
LANGUAGE_MODEL = f"py3langid-{version('py3langid')}"
_NEUTRAL = Sentiment(0.0, 0.0, 1.0, 0.0)
_NO_WORDS = {"empty", "emoji_only"}


class TextAnalyzer:
    def __init__(self, max_chars: int, nlp: Nlp, classifier: SpamClassifier | None = None) -> None:
        self.max_chars = max_chars
        self.nlp = nlp
        self.classifier = classifier
        self.vader = Vader()
        self.languages = Languages()
        self.models = {"sentiment": SENTIMENT_MODEL, "lang": LANGUAGE_MODEL}
        if classifier is not None:
            self.models["spam"] = classifier.model_id

    @classmethod
    def create(cls, max_chars: int, nltk_data_dir: Path, project_model_dir: Path) -> TextAnalyzer:
        return cls(max_chars, Nlp(nltk_data_dir), SpamClassifier.load(project_model_dir))

    def analyse_batch(
        self, events: Sequence[ContentEvent], index: RuleIndex, analysed_at: int = 0
    ) -> list[TextFindings]:
        texts = [event.text[: self.max_chars] for event in events]
        found = [extract(text) for text in texts]
        flags = [flags_of(text, entities) for text, entities in zip(texts, found)]
        # the platform's declared language wins; texts without words have none
        unknown = [i for i, event in enumerate(events) if not event.lang and not _NO_WORDS.intersection(flags[i])]
        identified = dict(zip(unknown, self.languages.classify([texts[i] for i in unknown])))
        declared = [(event.lang.lower(), None) if event.lang else (None, None) for event in events]
        spam = self._spam(texts)
        return [
            self._analyse(event, texts[i], found[i], flags[i], identified.get(i, declared[i]),
                          index, analysed_at, None if spam is None else spam[i])
            for i, event in enumerate(events)
        ]

    def _spam(self, texts: list[str]) -> list[float] | None:
        """Scores of the batch, or None when the classifier is disabled or fails on this batch
        (logged; a batch the model cannot score must not stop the job or lose the other findings)."""
        if self.classifier is None or not texts:
            return None
        try:
            return self.classifier.score(texts)
        except ModelError as exc:
            log.warning("spam scores skipped for a batch of %d texts: %s", len(texts), exc)
            return None

    def analyse(self, event: ContentEvent, index: RuleIndex, analysed_at: int = 0) -> TextFindings:
        return self.analyse_batch([event], index, analysed_at)[0]

    def _analyse(self, event: ContentEvent, text: str, entities: list[Entity], flags: list[str],
                 language: tuple[str | None, float | None], index: RuleIndex, analysed_at: int,
                 spam: float | None) -> TextFindings:
        truncated = len(event.text) > len(text)
        if truncated:
            flags.append("truncated")
        lang, lang_score = language
        sentences = self.nlp.sentences(text, lang)
        overall, per_sentence = self._sentiment(text, sentences)
        hits, tracked = index.scanner.scan(Words.of(fold(text)), text)
        entities.extend(tracked)
        if index.needs_names(hits, tracked):
            entities.extend(self.nlp.names(text, sentences))
        entities.sort(key=lambda entity: (entity.start, entity.type))
        return TextFindings(
            content_key=event.content_key,
            sentiment=overall,
            sentences=per_sentence,
            lang=lang,
            lang_score=lang_score,
            entities=tuple(entities),
            hits=tuple(hits),
            classifiers={} if spam is None else {"spam": round(spam, 4)},
            flags=tuple(flags),
            text_chars=len(event.text),
            truncated=truncated,
            models=dict(self.models),
            collected_at=event.collected_at,
            analysed_at=analysed_at,
        )

    def _sentiment(
        self, text: str, sentences: list[tuple[int, int]]
    ) -> tuple[Sentiment, tuple[SentenceSentiment, ...]]:
        if not sentences:
            return _NEUTRAL, ()
        overall = self._vader(text)
        if len(sentences) == 1:  # most posts: the sentence is the text
            start, end = sentences[0]
            return overall, (SentenceSentiment(start, end, overall),)
        return overall, tuple(SentenceSentiment(s, e, self._vader(text[s:e])) for s, e in sentences)

    def _vader(self, text: str) -> Sentiment:
        scores = self.vader.polarity_scores(text)
        return Sentiment(scores["compound"], scores["pos"], scores["neu"], scores["neg"])
