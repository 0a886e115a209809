"""Unit tests of the VADER scorer: its scores are the stock vaderSentiment analyzer's, exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from trackius.settings import Settings
from udfs.sentiment import Vader

DATA = Settings().data_dir
STOCK = SentimentIntensityAnalyzer()
VADER = Vader()


def differences(texts: list[str]) -> list[tuple[str, dict, dict]]:
    """(text, stock scores, our scores) wherever they differ."""
    pairs = ((text, STOCK.polarity_scores(text), VADER.polarity_scores(text)) for text in texts)
    return [(text, stock, ours) for text, stock, ours in pairs if stock != ours]


def test_identical_to_stock_on_the_vader_tweet_ground_truth() -> None:
    """Every tweet of VADER's own ground truth scores exactly as with the stock analyzer."""
    path = DATA / "vader_groundtruth" / "tweets_GroundTruth.txt"
    texts = [line.split("\t")[2] for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(texts) > 4000
    assert differences(texts)[:3] == []


def test_identical_to_stock_on_the_sms_collection() -> None:
    """Every SMS of the spam collection (hundreds of them non-ASCII) scores exactly as with
    stock."""
    lines = (DATA / "text_spam" / "SMSSpamCollection").read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t", 1)[1] for line in lines]
    assert len(texts) > 4000 and sum(not text.isascii() for text in texts) > 100
    assert differences(texts)[:3] == []


@pytest.mark.parametrize(
    "text",
    [
        # emoji and other non-ASCII text (stock rewrites emoji as their descriptions)
        "Café was great 😀", "Terrible 😡😡", "hello 👋🏽 there", "😀", "naïve but lovely", "不好",
        "nicht gut",
        # but, kind of, least
        "The food is good but the service was terrible", "good BUT bad", "It was kind of good",
        "kind of", "kind", "so kind of you", "KIND OF great", "at least it's good", "least good",
        # negations, at every distance VADER looks back
        "not good", "not very good", "not at all good", "never so good", "never this good",
        "without doubt great", "I don't think this is not bad", "no problem", "no good",
        "nope, not really",
        "isn't it awesome?!?!",
        # ALL CAPS against mixed case, boosters, punctuation emphasis
        "I LOVE it", "NOT GOOD AT ALL!!!", "This is SO AWESOME but I HATE the ending",
        "ALL CAPS GOOD",
        "very very very good", "barely good", "good!!!!!!", "good???", "Hmm :) :(",
        # idioms: before, after and around the word VADER scores
        "The movie was the bomb!", "That is the bomb", "He can't cut the mustard.",
        "yeah right, great", "That was the kiss of death for the project", "living hand to mouth",
        "break a leg", "bad ass",
        "the shit", "what the hell happened, it was good", "kiss of death", "cut the mustard",
        # whitespace and nothing
        "  padded good  ", "\tgood\n", "", " ",
    ],
)
def test_identical_to_stock_on_the_rules_vader_applies(text: str) -> None:
    """Emoji, non-ASCII text, 'but', 'kind of', negations, capitals, boosters and idioms score the
    same as with the stock analyzer."""
    assert VADER.polarity_scores(text) == STOCK.polarity_scores(text)


# Words that VADER's rules react to: lexicon words, negations, boosters, idiom parts, caps, emoji.
VOCABULARY = [
    "good", "bad", "GOOD", "BAD", "love", "hate", "great", "terrible", "not", "never", "no",
    "nor", "or", "so", "this", "without", "doubt", "kind", "of", "but", "BUT", "very", "extremely",
    "barely", "least", "at", "the", "bomb", "cut", "mustard", "kiss", "death", "hand", "to",
    "mouth", "yeah", "right", "shit", "ass", "!", "?", "!!!", ":)", ":(", "isn't", "don't", "it",
    "was", "😀", "😡", "café", "sort", "kinda",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=14))
def test_identical_to_stock_on_any_mix_of_its_rules(words: list[str]) -> None:
    """Any sequence of the words VADER's rules look at (negations, idioms, boosters at any distance)
    scores the same as with the stock analyzer."""
    text = " ".join(words)
    assert VADER.polarity_scores(text) == STOCK.polarity_scores(text)


def test_long_text_scores_like_stock() -> None:
    """A long text (where the stock rules re-read the whole text per word) scores the same."""
    text = "I love it but not really, it was kind of the bomb. " * 80
    assert VADER.polarity_scores(text) == STOCK.polarity_scores(text)
