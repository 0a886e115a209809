"""Unit tests of the rule condition language: parse results, normalisation, syntax errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.condition import (
    And,
    ClassifierCompare,
    ConditionSyntaxError,
    EntityRef,
    Field,
    Near,
    Not,
    Or,
    Phrase,
    SentimentCompare,
    Term,
    parse,
    patterns_of,
)
from schemas.textnorm import normalize


def syntax_error(source: str) -> ConditionSyntaxError:
    with pytest.raises(ConditionSyntaxError) as info:
        parse(source)
    return info.value


# --- atoms ------------------------------------------------------------------------------------


def test_single_word_is_a_term() -> None:
    """A bare word parses to a Term of its normalised text."""
    assert parse("doge") == Term("doge")


@pytest.mark.parametrize("source", ["$DOGE", "#Bitcoin", "@ElonMusk"])
def test_cashtag_hashtag_and_handle_keep_their_prefix(source: str) -> None:
    """$cashtags, #hashtags and @handles are terms that keep their sigil, lower-cased."""
    assert parse(source) == Term(source.lower())


def test_multi_word_phrase_is_a_phrase_of_normalised_words() -> None:
    """A quoted phrase becomes a Phrase of its words, normalised and split on any whitespace."""
    assert parse('"Elon   Musk\tTweets"') == Phrase(("elon", "musk", "tweets"))


def test_single_word_phrase_becomes_a_term() -> None:
    """A quoted single word (spaces around it ignored) is the same Term as the bare word."""
    assert parse('" Doge "') == Term("doge") == parse("doge")


def test_phrase_may_contain_operator_words() -> None:
    """Inside quotes AND/OR/NOT are ordinary words, not operators."""
    assert parse('"rock AND roll"') == Phrase(("rock", "and", "roll"))


def test_lowercase_and_is_a_term() -> None:
    """Operators are upper case only: 'and', 'or', 'not' are searchable words."""
    assert parse("and") == Term("and")
    assert parse("not OR or") == Or((Term("not"), Term("or")))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("sentiment > 0.5", SentimentCompare(">", 0.5)),
        ("sentiment >= -0.25", SentimentCompare(">=", -0.25)),
        ("sentiment<0", SentimentCompare("<", 0.0)),
        ("sentiment <= +1", SentimentCompare("<=", 1.0)),
        ("Sentiment = -1", SentimentCompare("=", -1.0)),
        ("sentiment != 0.0", SentimentCompare("!=", 0.0)),
    ],
)
def test_sentiment_comparisons(source: str, expected: SentimentCompare) -> None:
    """'sentiment CMP number' parses for every comparator, with or without spaces."""
    assert parse(source) == expected


def test_sentiment_without_comparator_is_a_term() -> None:
    """The word 'sentiment' alone is just a term."""
    assert parse("sentiment AND crypto") == And((Term("sentiment"), Term("crypto")))


# --- operators --------------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    """a OR b AND c is a OR (b AND c)."""
    assert parse("a OR b AND c") == Or((Term("a"), And((Term("b"), Term("c")))))


def test_not_binds_tighter_than_and() -> None:
    """NOT a AND b is (NOT a) AND b."""
    assert parse("NOT a AND b") == And((Not(Term("a")), Term("b")))


def test_chains_are_flat() -> None:
    """Repeated AND / OR give one flat node, not a nested pair."""
    assert parse("a AND b AND c") == And((Term("a"), Term("b"), Term("c")))
    assert parse("a OR b OR c") == Or((Term("a"), Term("b"), Term("c")))


def test_parentheses_override_precedence() -> None:
    """(a OR b) AND c groups the OR first."""
    assert parse("(a OR b) AND c") == And((Or((Term("a"), Term("b"))), Term("c")))


def test_double_negation_and_negated_group() -> None:
    """NOT NOT a nests; NOT (a OR b) negates the whole group."""
    assert parse("NOT NOT a") == Not(Not(Term("a")))
    assert parse("NOT (a OR b)") == Not(Or((Term("a"), Term("b"))))


def test_mixed_condition() -> None:
    """A realistic condition combines every node type with the documented precedence."""
    assert parse('$doge AND ("to the moon" OR #hodl) AND NOT scam AND sentiment > 0.5') == And((
        Term("$doge"),
        Or((Phrase(("to", "the", "moon")), Term("#hodl"))),
        Not(Term("scam")),
        SentimentCompare(">", 0.5),
    ))


# --- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Café", "cafe"),
        ("NAÏVE", "naive"),
        ("Straße", "strasse"),  # case folding, not just lower()
        ("ＤＯＧＥ", "doge"),  # NFKC: full-width letters
        ("ﬁnance", "finance"),  # NFKC: ligature
        ("Cafe\u0301", "cafe"),  # decomposed accent
    ],
)
def test_terms_are_normalised(source: str, expected: str) -> None:
    """Terms are NFKC, case-folded and stripped of accents, like the text they are matched in."""
    assert parse(source) == Term(expected)
    assert normalize(source) == expected


def test_phrase_words_are_normalised() -> None:
    """Phrase words get the same normalisation as terms."""
    assert parse('"Crème Brûlée"') == Phrase(("creme", "brulee"))


# --- syntax errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ("", "empty condition", 0),
        ("   ", "empty condition", 0),
        ("(a OR b", "'(' is never closed", 0),
        ("a AND (b OR (c)", "'(' is never closed", 6),
        ('doge AND "to the moon', "unterminated phrase", 9),
        ("a AND", "unexpected end of condition", 5),
        ("a OR ", "unexpected end of condition", 5),
        ("NOT", "unexpected end of condition", 3),
        ("AND a", "expected a term, phrase or '(' but found 'AND'", 0),
        ("a AND OR b", "expected a term, phrase or '(' but found 'OR'", 6),
        ("a)", "')' has no matching '('", 1),
        ("(a))", "')' has no matching '('", 3),
        (")", "expected a term, phrase or '(' but found ')'", 0),
        ("a b", "expected AND, OR or NEAR/n before 'b'", 2),
        ("NEAR/3 a", "NEAR/n needs a term on its left", 0),
        ("a NEAR/3", "unexpected end of condition", 8),
        ("a NEAR/300 b", "NEAR distance is at most 100 words", 2),
        ("(a AND b) NEAR/3 c", "NEAR joins terms, phrases, wildcards or OR-groups of them", 0),
        ("a NEAR/3 NOT b", "expected a term, phrase or '(' but found 'NOT'", 9),
        ("a NEAR/3 sentiment > 0", "NEAR joins terms, phrases, wildcards or OR-groups of them", 9),
        ("c*", "a wildcard needs at least 2 letters or digits before '*'", 0),
        ("*", "'*' has no letters or digits", 0),
        ("cr*pto", "'*' is allowed only at the end of a word", 2),
        ("author:", "author: needs a value", 0),
        ('lang:""', "lang: needs a value", 0),
        ("hashtag:two words", "expected AND, OR or NEAR/n before 'words'", 12),
        ("entity(", "unexpected end of condition", 7),
        ("entity(robot)", ("entity() takes a \"name\" or one of name, person, org, brand, product, place, "
         "account, ticker, url, domain, mention, hashtag, cashtag, emoji"), 7),
        ('entity("x" y', 'entity( is never closed', 0),
        ('""', "empty phrase", 0),
        ("a AND !b", "unexpected character '!'", 6),
        ("sentiment >", "unexpected end of condition", 11),
        ("sentiment > high", "sentiment > needs a number, found 'high'", 12),
        ("sentiment >= 1.5", "sentiment is compared with a number in -1..1", 13),
        ("sentiment < -2", "sentiment is compared with a number in -1..1", 12),
    ],
)
def test_syntax_errors_carry_message_and_position(source: str, message: str, position: int) -> None:
    """Each kind of syntax error has a precise message and the 0-based position of the culprit."""
    error = syntax_error(source)
    assert (error.message, error.position) == (message, position)
    assert str(error) == f"{message} at position {position}"


def test_syntax_error_is_a_value_error() -> None:
    """ConditionSyntaxError is a ValueError, so generic validation code can catch it."""
    assert isinstance(syntax_error(""), ValueError)


def test_bare_number_is_a_term() -> None:
    """halving AND 2024 parses like halving AND "2024"."""
    expected = And((Term("halving"), Term("2024")))
    assert parse("halving AND 2024") == parse('halving AND "2024"') == expected


@pytest.mark.parametrize("source", ["(" * 400 + "a" + ")" * 400, "NOT " * 1500 + "a"])
def test_deep_nesting_never_raises_recursion_error(source: str) -> None:
    """A very deeply nested condition either parses or is a ConditionSyntaxError."""
    try:
        parse(source)
    except ConditionSyntaxError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet='ab ()"<>=!-.01ANDORTsentiment$#@', max_size=40))
def test_parse_only_ever_raises_condition_syntax_error(source: str) -> None:
    """On arbitrary text parse returns a node or raises ConditionSyntaxError, nothing else."""
    try:
        node = parse(source)
    except ConditionSyntaxError as exc:
        assert 0 <= exc.position <= len(source)
    else:
        assert isinstance(node, (Term, Phrase, Field, EntityRef, Near, SentimentCompare, ClassifierCompare,
                                 And, Or, Not))


# --- query operators: NEAR/n, wildcards, fields, entities -------------------------------------


def test_near_binds_tighter_than_and_and_takes_groups() -> None:
    assert parse("(bitcoin OR btc) NEAR/3 crash AND x") == And((
        Near(Or((Term("bitcoin"), Term("btc"))), Term("crash"), 3), Term("x")))
    assert parse("a NEAR/1 b NEAR/2 c") == Near(Near(Term("a"), Term("b"), 1), Term("c"), 2)


def test_wildcards_on_terms_and_phrase_ends() -> None:
    assert parse("Crypt*") == Term("crypt", wildcard=True)
    assert parse('"bitcoin crash*"') == Phrase(("bitcoin", "crash"), wildcard=True)
    assert parse("$dog*") == Term("$dog", wildcard=True)


def test_fields() -> None:
    assert parse("author:@ElonMusk") == Field("author", "elonmusk")
    assert parse('author:"Elon Musk"') == Field("author", "elon musk")
    assert parse("PLATFORM:x AND lang:EN") == And((Field("platform", "x"), Field("lang", "en")))
    assert parse("hashtag:#Bitcoin") == parse("hashtag:bitcoin") == Term("#bitcoin")
    assert parse("domain:Bit.ly") == Field("domain", "bit.ly")


def test_an_unknown_field_is_an_error_and_quoting_searches_the_text() -> None:
    with pytest.raises(ConditionSyntaxError, match="unknown field 're'.*quote it"):
        parse("re:invent")
    assert parse('"re:invent"') == Phrase(("re", "invent"))
    assert parse("https://example.com") == Phrase(("https", "example", "com"))


def test_classifier_comparison() -> None:
    assert parse('classifier("Spam") >= 0.9') == ClassifierCompare("spam", ">=", 0.9)


@pytest.mark.parametrize(("source", "message", "position"), [
    ("classifier(spam) > 1", 'classifier() takes one argument in quotes, e.g. classifier("spam")', 11),
    ('classifier("spam") > 2', 'classifier("spam") is compared with a number in 0..1', 21),
    ('classifier("spam") x', 'classifier("spam") needs a comparison (> >= < <= = !=), found \'x\'', 19),
    ('classifier("spam" > 1', "classifier( is never closed", 0),
])
def test_classifier_errors(source: str, message: str, position: int) -> None:
    error = syntax_error(source)
    assert (error.message, error.position) == (message, position)


def test_entities() -> None:
    assert parse("entity(person)") == EntityRef(type="person")
    assert parse('entity("Elon Musk")') == EntityRef(name="elon musk")


def test_words_split_like_the_text_analysis_splits_them() -> None:
    """A term of several words (hyphens, dots, unsegmented scripts) is a phrase of them."""
    assert parse("state-of-the-art") == Phrase(("state", "of", "the", "art"))
    assert parse("比特币") == Phrase(("比", "特", "币"))
    assert parse("don't") == Term("don't")


def test_patterns_of_collects_what_the_scan_looks_for() -> None:
    """patterns_of walks every operator (NOT and NEAR included) and the names in entity()."""
    node = parse('$doge AND ("to the moon" OR #hodl) AND NOT scam AND sentiment > 0.5 '
                 'AND crypt* NEAR/2 x AND entity("Elon Musk")')
    assert patterns_of(node) == {
        Term("$doge"), Phrase(("to", "the", "moon")), Term("#hodl"), Term("scam"),
        Term("crypt", wildcard=True), Term("x"), Phrase(("elon", "musk"))}


def test_patterns_of_sentiment_only_is_empty() -> None:
    assert patterns_of(parse("sentiment < -0.5 AND platform:x")) == set()


def test_parse_caches_identical_sources() -> None:
    """Identical condition strings share one AST object."""
    assert parse("cache AND me") is parse("cache AND me")
