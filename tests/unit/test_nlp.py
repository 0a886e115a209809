"""Unit tests of the NLTK wrapper: sentence spans, names, and running without the NLTK data."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nltk
import pytest

from schemas.findings import Entity
from trackius.settings import Settings
from udfs.nlp import Nlp

SETTINGS = Settings()
NLP = Nlp(SETTINGS.nltk_data_dir)
PUNKT = NLP._splitter("english")  # the model Nlp loaded from its own directory


def texts(spans: list[tuple[int, int]], text: str) -> list[str]:
    return [text[start:end] for start, end in spans]


def corpus() -> list[str]:
    data = SETTINGS.data_dir
    tweets = (data / "vader_groundtruth" / "tweets_GroundTruth.txt").read_text(encoding="utf-8")
    sms = (data / "text_spam" / "SMSSpamCollection").read_text(encoding="utf-8")
    return ([line.split("\t")[2] for line in tweets.splitlines()]
            + [line.split("\t", 1)[1] for line in sms.splitlines()])


@pytest.fixture
def bare_nltk_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """NLTK searches only the directories the test's own Nlp adds (not ~/nltk_data, nor the real
    data directory that other modules' Nlp objects put on NLTK's global path)."""
    monkeypatch.setattr(nltk.data, "path", [])


# --- sentences --------------------------------------------------------------------------------


def test_one_sentence_texts_get_punkts_answer() -> None:
    """On every tweet and SMS that punkt reads as one sentence (most take the fast path that
    skips punkt), the span is punkt's."""
    single = [text for text in corpus()
              if len(list(PUNKT.span_tokenize(text))) == 1 and not text[:1].isspace()]
    assert len(single) > 3500
    assert [(text, NLP.sentences(text, "en")) for text in single
            if NLP.sentences(text, "en") != list(PUNKT.span_tokenize(text))][:3] == []


@pytest.mark.parametrize(
    "text",
    ["Hello world.", "Hello world", "Dr. Smith is here.", "It costs $3.50 today.",
     "U.S. election results are in", "Line one\nLine two", "Hello world.   ", "Wait... what",
     "One.Two", "我今天买了比特币。他也买了。"],
)
def test_one_sentence_span(text: str) -> None:
    """A text with no sentence end inside it is one sentence, the span punkt gives."""
    assert NLP.sentences(text, "en") == list(PUNKT.span_tokenize(text))


def test_one_sentence_span_leaves_out_surrounding_spaces() -> None:
    """A one-sentence text's span is the sentence itself, without the spaces around it."""
    assert NLP.sentences("  Hello world!  ", "en") == [(2, 14)]


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("Hi there. How are you? Fine!", "en", ["Hi there.", "How are you?", "Fine!"]),
        ("Mr. Smith went home. He slept.", "en", ["Mr. Smith went home.", "He slept."]),
        ('He said "stop." Then left.', "en", ['He said "stop."', "Then left."]),
        ("Der Hund bellt. Die Katze schläft.", "de", ["Der Hund bellt.", "Die Katze schläft."]),
        ("First one. Second one.", None, ["First one.", "Second one."]),  # no language: English
        ("First one. Second one.", "xx", ["First one.", "Second one."]),  # no punkt model: English
    ],
)
def test_several_sentences_are_split_by_punkt(
    text: str, lang: str | None, expected: list[str]
) -> None:
    """A text with sentence ends inside it is split by punkt (the language's model, else English's);
    each span slices one sentence out of the text."""
    assert texts(NLP.sentences(text, lang), text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_no_sentences_in_blank_text(text: str) -> None:
    """Empty or blank text has no sentences."""
    assert NLP.sentences(text, "en") == []


def test_a_long_run_of_exclamation_marks_is_cheap() -> None:
    """Splitting a 20,000-character run of '!' (a post at the default analysis limit) takes well
    under a second."""
    started = time.perf_counter()
    NLP.sentences("!" * 20_000, "en")
    assert time.perf_counter() - started < 1.0


# --- names ------------------------------------------------------------------------------------


def test_names_are_found_with_their_spans() -> None:
    """The binary NE chunker finds a person and a place, as untyped names with exact spans."""
    text = "Angela Merkel visited Berlin on Monday."
    assert NLP.names(text, NLP.sentences(text, "en")) == [
        Entity("Angela Merkel", "name", 0, 13), Entity("Berlin", "name", 22, 28)]


def test_names_of_later_sentences_point_into_the_whole_text() -> None:
    """Names found sentence by sentence have offsets into the whole text."""
    text = "Barack Obama met Angela Merkel. Then they flew to Paris with Emmanuel Macron."
    found = NLP.names(text, NLP.sentences(text, "en"))
    assert [(e.text, text[e.start:e.end]) for e in found] == [
        ("Barack Obama", "Barack Obama"), ("Angela Merkel", "Angela Merkel"), ("Paris", "Paris"),
        ("Emmanuel Macron", "Emmanuel Macron")]


def test_names_with_quotes_keep_their_spans() -> None:
    """Quotes (which the word tokenizer rewrites) do not shift the spans of the names after them."""
    text = "He said \"bye\" and ``hi'' to John Smith."
    (name,) = NLP.names(text, NLP.sentences(text, "en"))
    assert text[name.start:name.end] == name.text == "John Smith"


def test_no_names_without_sentences() -> None:
    """An empty text has no names."""
    assert NLP.names("", []) == []


def test_preload_loads_every_sentence_model(caplog: pytest.LogCaptureFixture) -> None:
    """With the data directory present, preloading every punkt model logs nothing."""
    caplog.set_level(logging.WARNING, logger="udfs.nlp")
    NLP.preload()
    assert caplog.records == []


# --- without the NLTK data ----------------------------------------------------------------------


@pytest.mark.usefixtures("bare_nltk_path")
def test_missing_data_falls_back_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the NLTK data, sentences are split after . ! ? and names are not reported; each
    missing model is one warning line, however often it is asked for, and nothing raises."""
    caplog.set_level(logging.WARNING, logger="udfs.nlp")
    nlp = Nlp(tmp_path)
    text = "Hi there. How are you? Fine!"
    for _ in range(3):
        assert [sentence.strip() for sentence in texts(nlp.sentences(text, "en"), text)] == [
            "Hi there.", "How are you?", "Fine!"]
        assert nlp.names("Angela Merkel visited Berlin.", [(0, 29)]) == []
    assert nlp.sentences("Just one sentence here!", "en") == [(0, 23)]
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "sentence splitting for english" in messages[0] and str(tmp_path) in messages[0]
    assert "named entities disabled" in messages[1]
    assert all(record.levelname == "WARNING" for record in caplog.records)


@pytest.mark.usefixtures("bare_nltk_path")
def test_missing_data_preload_warns_per_language(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Preloading without the NLTK data logs one warning per language and does not raise."""
    caplog.set_level(logging.WARNING, logger="udfs.nlp")
    nlp = Nlp(tmp_path)
    nlp.preload()
    nlp.preload()
    assert len(caplog.records) == 19
    text = "Erster Satz. Zweiter Satz."
    sentences = texts(nlp.sentences(text, "de"), text)
    assert [sentence.strip() for sentence in sentences] == ["Erster Satz.", "Zweiter Satz."]


@pytest.mark.usefixtures("bare_nltk_path")
def test_a_missing_data_dir_is_not_filled_from_another_nlp(tmp_path: Path) -> None:
    """An Nlp reads its own data directory: another Nlp in the process does not lend it models."""
    Nlp(SETTINGS.nltk_data_dir)
    missing = Nlp(tmp_path)
    assert missing.names("Angela Merkel visited Berlin.", [(0, 29)]) == []
