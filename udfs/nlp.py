"""NLTK, read offline: sentences and names.

The NLTK packages come from a data directory setting (punkt_tab, the perceptron tagger and the
binary NE chunker: only the binary one is available offline, so names are untyped, type "name").
A missing package disables what needs it with one log line and the rest runs: sentences then
fall back to splitting after . ! ? and names are not reported.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path

import nltk

from schemas.findings import Entity

log = logging.getLogger(__name__)

# punkt_tab ships these; other languages are split with the English model.
_PUNKT_LANGUAGES = {
    "cs": "czech", "da": "danish", "nl": "dutch", "en": "english", "et": "estonian",
    "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "it": "italian",
    "ml": "malayalam", "no": "norwegian", "pl": "polish", "pt": "portuguese", "ru": "russian",
    "sl": "slovene", "es": "spanish", "sv": "swedish", "tr": "turkish",
}
# A text with no sentence end before its last few characters is one sentence: no need for punkt.
_INNER_END = re.compile(r"[.!?。！？…][\s\"')\]]++\S")  # possessive: no backtracking on long runs
_FALLBACK_SENTENCE = re.compile(r"[^.!?。！？…]+(?:[.!?。！？…]+|$)")


class Nlp:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._splitters: dict[str, object | None] = {}
        self._tagger = self._chunker = None
        self.names_available = True

    def preload(self) -> None:
        """Load every sentence model now: a first load costs ~0.1 s, too long inside a batch."""
        for language in set(_PUNKT_LANGUAGES.values()):
            self._splitter(language)

    def sentences(self, text: str, lang: str | None) -> list[tuple[int, int]]:
        if not _INNER_END.search(text):
            stripped = text.strip()
            start = len(text) - len(text.lstrip())
            return [(start, start + len(stripped))] if stripped else []
        splitter = self._splitter(_PUNKT_LANGUAGES.get(lang or "en", "english"))
        if splitter is None:
            return [m.span() for m in _FALLBACK_SENTENCE.finditer(text) if m.group().strip()]
        return list(splitter.span_tokenize(text))

    def _splitter(self, language: str):
        if language not in self._splitters:
            try:
                with _only(self.data_dir):
                    self._splitters[language] = nltk.tokenize.PunktTokenizer(language)
            except (LookupError, OSError) as exc:
                log.warning("sentence splitting for %s falls back to punctuation: punkt_tab not found "
                            "under %s (%s)", language, self.data_dir, type(exc).__name__)
                self._splitters[language] = None
        return self._splitters[language]

    def names(self, text: str, sentences: list[tuple[int, int]]) -> list[Entity]:
        """Named-entity spans from NLTK's binary chunker (POS tagging first), per sentence."""
        if not self._load_name_models():
            return []
        found = []
        for start, end in sentences:
            spans = list(_word_spans(text, start, end))
            if not spans:
                continue
            tagged = self._tagger.tag([text[s:e] for s, e in spans])
            tree = self._chunker.parse(tagged)
            position = 0
            for node in tree:
                if isinstance(node, nltk.Tree):
                    first, last = spans[position], spans[position + len(node) - 1]
                    found.append(Entity(text[first[0]:last[1]], "name", first[0], last[1]))
                    position += len(node)
                else:
                    position += 1
        return found

    def _load_name_models(self) -> bool:
        if self._chunker is None and self.names_available:
            try:
                from nltk.tag import PerceptronTagger

                with _only(self.data_dir):
                    self._tagger = PerceptronTagger(lang="eng")
                    self._chunker = nltk.chunk.ne_chunker(fmt="binary")
                    self._chunker.parse(self._tagger.tag(["Warm", "up"]))  # loads corpora/words now
            except (LookupError, OSError, ValueError) as exc:
                log.warning("named entities disabled: the tagger or the binary NE chunker is missing "
                            "under %s (%s)", self.data_dir, type(exc).__name__)
                self.names_available = False
        return self.names_available


@contextmanager
def _only(data_dir: Path):
    """Load from this directory alone: NLTK's search path is global and also looks in the home
    directory, where a model we were not configured with could be found."""
    saved = list(nltk.data.path)
    nltk.data.path[:] = [str(data_dir)]
    try:
        yield
    finally:
        nltk.data.path[:] = saved


_TREEBANK = nltk.tokenize.NLTKWordTokenizer()


def _word_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    piece = text[start:end]
    try:
        spans = list(_TREEBANK.span_tokenize(piece))
    except ValueError:  # the tokenizer cannot align some quote forms back to the text
        spans = [match.span() for match in re.finditer(r"\w+|[^\w\s]", piece)]
    return [(start + s, start + e) for s, e in spans]
