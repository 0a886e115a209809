"""Unit tests of batched language identification: the same answers as py3langid, text by text."""

from __future__ import annotations

import pytest

from trackius.settings import Settings
from udfs.languages import MAX_CHARS, Languages

DATA = Settings().data_dir
LANGUAGES = Languages()

EDGE_CASES = [
    "", " ", "\n", "a", "😀😀 🚀", "12345 678", "x" * 5000, "ok" * 3000, "\ufffd\ufffd",
    "Hello 世界 Привет мир مرحبا", "HELLO WORLD THIS IS LOUD", "ÉCOLE ÉTÉ", "e\u0301cole",
    "ﬁnance ﬁle",
    "Der schnelle braune Fuchs springt über den faulen Hund", "Le chat est sur la table",
    "El perro come la comida en la casa", "我今天买了比特币。", "日本語のテキストです", "สวัสดีครับ",
    "नमस्ते दुनिया", "ÄÖÜ " * MAX_CHARS,  # upper case, multi-byte, longer than the head
    "Das ist ein deutscher Satz. " * 20 + "This is English. " * 200,  # the head decides
]


def corpus_lines() -> list[str]:
    """Every 20th tweet of VADER's ground truth and every 20th SMS: a few hundred real texts."""
    tweets = (DATA / "vader_groundtruth" / "tweets_GroundTruth.txt").read_text(encoding="utf-8")
    sms = (DATA / "text_spam" / "SMSSpamCollection").read_text(encoding="utf-8")
    return ([line.split("\t")[2] for line in tweets.splitlines()[::20]]
            + [line.split("\t", 1)[1] for line in sms.splitlines()[::20]])


def disagreements(texts: list[str]) -> list[tuple[str, tuple[str, float], tuple[str, float]]]:
    """(text, ours, py3langid's on the head) wherever the label or the probability differs."""
    ours = LANGUAGES.classify(texts)
    theirs = [LANGUAGES.reference.classify(text[:MAX_CHARS]) for text in texts]
    return [
        (text[:60], mine, reference) for text, mine, reference in zip(texts, ours, theirs)
        if mine[0] != reference[0] or abs(mine[1] - reference[1]) > 1e-3
    ]


def test_agrees_with_py3langid_on_real_texts() -> None:
    """On a few hundred tweets and SMS classified as one batch, every label is py3langid's and every
    probability is within 1e-3 of it."""
    texts = corpus_lines()
    assert len(texts) > 400
    assert disagreements(texts) == []


def test_agrees_with_py3langid_on_edge_cases() -> None:
    """Empty, emoji-only, digit-only, very long, mixed-script and upper-case texts get py3langid's
    answer for their head."""
    assert disagreements(EDGE_CASES) == []


def test_a_texts_result_does_not_depend_on_its_batch() -> None:
    """Alone, in a batch, first or last: a text gets the same label and probability."""
    texts = EDGE_CASES + corpus_lines()[:60]
    together = LANGUAGES.classify(texts)
    assert [LANGUAGES.classify([text])[0] for text in texts] == together
    assert LANGUAGES.classify(texts[::-1])[::-1] == together
    assert LANGUAGES.classify(texts[:7]) + LANGUAGES.classify(texts[7:]) == together


def test_only_the_head_of_a_text_is_read() -> None:
    """Whatever follows the first MAX_CHARS characters does not change the result."""
    head = "Der schnelle braune Fuchs springt über den faulen Hund. " * 6
    longer = head + "English words here. " * 500
    assert LANGUAGES.classify([head[:MAX_CHARS]]) == LANGUAGES.classify([longer])


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The quick brown fox jumps over the lazy dog", "en"),
        ("Der schnelle braune Fuchs springt über den faulen Hund", "de"),
        ("Le chat est sur la table et il dort", "fr"),
        ("El perro come la comida en la casa", "es"),
        ("Биткоин сегодня снова падает", "ru"),
        ("我今天买了比特币。", "zh"),
        ("สวัสดีครับ", "th"),
    ],
)
def test_identifies_common_languages(text: str, label: str) -> None:
    """Clear sentences in common languages get their ISO 639-1 code, with a probability rounded
    to 4 places."""
    ((found, probability),) = LANGUAGES.classify([text])
    assert found == label and 0 < probability <= 1 and probability == round(probability, 4)


def test_empty_batch() -> None:
    """No texts, no results."""
    assert LANGUAGES.classify([]) == []
