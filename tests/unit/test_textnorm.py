"""Unit tests of the matching form: folding with the way back to original offsets, and words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.textnorm import Folded, fold, fold_char, normalize, words


def original(text: str, piece: str) -> str:
    """The part of `text` that the first occurrence of `piece` in its folded form came from."""
    folded = fold(text)
    start = folded.text.index(piece)
    begin, end = folded.span(start, start + len(piece))
    return text[begin:end]


# --- fold -------------------------------------------------------------------------------------


def test_ascii_folds_to_lower_case_without_an_offset_map() -> None:
    """ASCII text is only lower-cased; its offsets are its own, so no map is kept."""
    folded = fold("Why is DOGE up?")
    assert folded == Folded("why is doge up?", None)
    assert folded.span(7, 11) == (7, 11)


@pytest.mark.parametrize(
    ("text", "folded", "piece", "source"),
    [
        ("Le CAFÉ est à Zürich", "le cafe est a zurich", "zurich", "Zürich"),
        ("Die Straße ist lang", "die strasse ist lang", "strasse", "Straße"),
        ("Die Straße ist lang", "die strasse ist lang", "ss", "ß"),  # both s come from the ß
        ("ﬁnal ﬁnance", "final finance", "finance", "ﬁnance"),
        ("ﬁnal ﬁnance", "final finance", "f", "ﬁ"),  # one folded letter of the ligature
        ("ＤＯＧＥ ２０２４", "doge 2024", "2024", "２０２４"),
        # the combining mark is inside the span
        ("so nai\u0308ve", "so naive", "naive", "nai\u0308ve"),
        ("🚀 to the moon 🌕", "🚀 to the moon 🌕", "moon", "moon"),
        ("🚀 to the moon 🌕", "🚀 to the moon 🌕", "🌕", "🌕"),
        ("Ünïcödé 🚀 Straße", "unicode 🚀 strasse", "strasse", "Straße"),
    ],
)
def test_fold_spans_point_into_the_original(
    text: str, folded: str, piece: str, source: str
) -> None:
    """Accents, ß, ligatures, full-width forms, decomposed accents and emoji: the folded text is the
    matching form and a span of it maps back to exactly the original characters."""
    assert fold(text).text == folded
    assert original(text, piece) == source


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_every_folded_character_comes_from_its_origin(text: str) -> None:
    """The offset map has one entry per folded character, never goes backwards, and each folded
    character is part of the folding of the original character it points at."""
    folded = fold(text)
    assert folded.text == normalize(text)
    if folded.origin is None:
        assert text.isascii() and len(folded.text) == len(text)
        return
    assert len(folded.origin) == len(folded.text)
    assert list(folded.origin) == sorted(folded.origin)
    for index, ch in enumerate(folded.text):
        assert ch in fold_char(text[folded.origin[index]])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("CAFÉ", "cafe"), ("Straße", "strasse"), ("ǅemal", "dzemal"), ("ΣΊΣΥΦΟΣ", "σισυφοσ"),
     ("ＡＢＣ", "abc")],
)
def test_normalize_is_case_and_accent_insensitive(text: str, expected: str) -> None:
    """normalize is NFKC, case folding and accent removal, the same as fold's text."""
    assert normalize(text) == expected == fold(text).text


# --- words ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$DOGE #HODL @ElonMusk doge", ["$doge", "#hodl", "@elonmusk", "doge"]),
        ("I don't care, it's rock’n’roll", ["i", "don't", "care", "it", "s", "rock’n’roll"]),
        ("Tesla's stock, the Teslas’s", ["tesla", "s", "stock", "the", "teslas", "s"]),  # possessive 's
        ("'doge' dogs' 'tis", ["doge", "dogs", "tis"]),  # only inner apostrophes belong to a word
        ("rock-n-roll, U.S. election", ["rock", "n", "roll", "u", "s", "election"]),
        ("halving 2024!", ["halving", "2024"]),
        ("Биткоин падает, κρυπτονομίσματα", ["биткоин", "падает", "κρυπτονομισματα"]),
        ("سعر بيتكوين اليوم", ["سعر", "بيتكوين", "اليوم"]),
        ("🚀🚀 moon 🌕", ["moon"]),
        ("", []),
    ],
)
def test_words_keep_sigils_and_inner_apostrophes(text: str, expected: list[str]) -> None:
    """Words are runs of letters and digits in matching form, with their $ # @ sigil and inner
    apostrophes; punctuation and emoji separate them."""
    assert words(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我买了比特币。", ["我", "买", "了", "比", "特", "币"]),
        ("日本語のテキスト", ["日", "本", "語", "の", "テ", "キ", "ス", "ト"]),
        ("ภาษาไทย", ["ภ", "า", "ษ", "า", "ไ", "ท", "ย"]),
        ("Bitcoin比特币", ["bitcoin", "比", "特", "币"]),
    ],
)
def test_unsegmented_scripts_are_one_word_per_character(text: str, expected: list[str]) -> None:
    """Chinese, Japanese and Thai have no spaces to find words by: each character is a word, and a
    neighbouring Latin word stays whole."""
    assert words(text) == expected


def test_indic_words_stay_whole() -> None:
    """A Hindi word with vowel signs is one word, like a Latin or Cyrillic one."""
    assert len(words("नमस्ते दुनिया")) == 2
