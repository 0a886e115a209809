"""Matching form of text, shared by the query parser and the text analysis so both agree.

Folding is Unicode NFKC, case folding and accent removal; it keeps a map from every folded
character back to the original one, so spans found in the folded text point into the text the
user wrote. Words are letters and digits with inner apostrophes and an optional $ # @ sigil.
Scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) have no word
boundaries a regex can find, so each of their characters is a word of its own: a query term
in those scripts becomes a phrase of characters, which finds it inside any run of text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

UNSEGMENTED = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
)
# Marks that belong to the letters of their word; Python's \w lacks them (Indic vowel signs,
# viramas, Hebrew and Arabic points, combining accents before folding removes them).
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0963\u0966-\u0dff"  # Devanagari to Sinhala, without the dandas
)
# Accents folded away for matching: the combining diacritics of Latin, Greek and Cyrillic only,
# so the vowel signs and viramas of Indic scripts and Thai tone marks keep words apart.
_DIACRITICS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
SIGILS = "#$@"
_WORD = rf"(?:[^\W{UNSEGMENTED}]|[{_MARKS}])+"
# Inner apostrophes keep "don't" one word, but a possessive 's is a word of its own, so the term
# "tesla" finds "Tesla's".
WORD = re.compile(rf"[{UNSEGMENTED}]|[{SIGILS}]?{_WORD}(?:['’](?![sS](?![\w]))(?:{_WORD}))*")
HAS_UNSEGMENTED = re.compile(rf"[{UNSEGMENTED}]")


@lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", ch).casefold())
    return unicodedata.normalize("NFC", _DIACRITICS.sub("", decomposed))


def normalize(text: str) -> str:
    """Matching form of a text: NFKC, case-folded, accents removed."""
    if text.isascii():
        return text.lower()
    return "".join(fold_char(ch) for ch in text)


@dataclass(frozen=True)
class Folded:
    """A text in matching form, with the way back to the original offsets."""

    text: str
    origin: tuple[int, ...] | None  # origin[i]: index in the original of folded char i; None: same

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of folded characters start..end (end exclusive)."""
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


def fold(text: str) -> Folded:
    if text.isascii():
        return Folded(text.lower(), None)
    parts, origin = [], []
    for index, ch in enumerate(text):
        folded = fold_char(ch)
        parts.append(folded)
        origin.extend([index] * len(folded))
    return Folded("".join(parts), tuple(origin))


def words(text: str) -> list[str]:
    """The words of a text in matching form, sigils kept."""
    return WORD.findall(normalize(text))
