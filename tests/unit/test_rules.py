"""Unit tests of rule evaluation: the RuleBook, matching, evidence, alerts and dedup."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alert import Alert, Evidence, StageTimes, alert_id_for
from schemas.condition import parse
from schemas.content import ContentEvent
from schemas.findings import Sentiment, TermHit, TextFindings
from schemas.pipeline import Analysed
from schemas.rule import Rule
from udfs.rules import EXCERPT_CHARS, RuleBook, alerts_for, evidence, is_new, matches


def findings(*terms: str, compound: float = 0.0) -> TextFindings:
    """Findings whose hits are the given terms, one per position."""
    hits = tuple(TermHit(term, 10 * i, 10 * i + len(term)) for i, term in enumerate(terms))
    return TextFindings("x:1", Sentiment(compound, 0.0, 1.0, 0.0), hits)


def check(condition: str, found: TextFindings) -> bool:
    return matches(parse(condition), found, found.matched())


def analysed(text: str, found: TextFindings) -> Analysed:
    event = ContentEvent("x:1", "x", "timeline", "alice", 500, 1_000, text=text, url="https://x.com/1")
    return Analysed(event, found, ingested_at=1_100, analysed_at=1_200)


# --- RuleBook ---------------------------------------------------------------------------------


def test_apply_newer_version_replaces() -> None:
    """A newer version replaces the current one and apply reports a change."""
    book = RuleBook.of([Rule("r", 1, condition="a")])
    assert book.apply(Rule("r", 2, condition="b")) is True
    assert book.rules["r"] == Rule("r", 2, condition="b")


def test_apply_ignores_older_versions() -> None:
    """An older version arriving late never replaces a newer one."""
    book = RuleBook.of([Rule("r", 3, condition="new")])
    assert book.apply(Rule("r", 2, condition="old")) is False
    assert book.rules["r"].condition == "new"


def test_deletion_removes_from_active_and_blocks_older_versions() -> None:
    """A deletion makes the rule inactive; an older live version cannot resurrect it."""
    book = RuleBook.of([Rule("r", 1, condition="a"), Rule("keep", 1, condition="b")])
    book.apply(Rule("r", 2, deleted=True))
    book.apply(Rule("r", 1, condition="a"))
    assert [rule.rule_id for rule in book.active()] == ["keep"]


def test_disabled_rule_is_kept_but_not_active() -> None:
    """A disabled rule stays in the book (for versioning) but is not in active()."""
    book = RuleBook.of([Rule("r", 1, enabled=False, condition="a")])
    assert "r" in book.rules and book.active() == []


def test_reapplying_the_same_record_reports_no_change() -> None:
    """Applying a record the book already holds (a replay) reports no change."""
    book = RuleBook.of([Rule("r", 1, condition="a")])
    assert book.apply(Rule("r", 1, condition="a")) is False


rule_ids = st.sampled_from(["alpha", "beta", "gamma", "delta"])
conditions = st.sampled_from(["a", "b OR c", "NOT d", '"e f"', "sentiment > 0"])


@st.composite
def rule_histories(draw: st.DrawFn) -> list[Rule]:
    """Versions of a few rules: each (rule_id, version) at most once, any mix of live/deleted."""
    keys = draw(st.sets(st.tuples(rule_ids, st.integers(1, 6)), max_size=12))
    return [
        Rule(rule_id, version, deleted=True) if draw(st.booleans())
        else Rule(rule_id, version, enabled=draw(st.booleans()), condition=draw(conditions))
        for rule_id, version in sorted(keys)
    ]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_rule_book_does_not_depend_on_arrival_order(data: st.DataObject) -> None:
    """Any order of the same rule versions gives the same book: the latest version of each rule."""
    history = data.draw(rule_histories())
    shuffled = data.draw(st.permutations(history))
    in_order, reordered = RuleBook.of(history), RuleBook.of(shuffled)
    assert reordered == in_order
    assert sorted(r.rule_id for r in reordered.active()) == sorted(
        r.rule_id for r in in_order.active())
    latest = {rule.rule_id: rule.version for rule in history}
    assert {rule_id: rule.version for rule_id, rule in reordered.rules.items()} == latest


# --- matches ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "terms", "expected"),
    [
        ("doge", ["doge"], True),
        ("doge", ["moon"], False),
        ('"to the moon"', ["to the moon"], True),
        ('"to the moon"', ["moon"], False),
        ("doge AND moon", ["doge", "moon"], True),
        ("doge AND moon", ["doge"], False),
        ("doge OR moon", ["moon"], True),
        ("doge OR moon", [], False),
        ("NOT scam", [], True),
        ("NOT scam", ["scam"], False),
        ("doge AND NOT scam", ["doge", "scam"], False),
    ],
)
def test_matches_terms_phrases_and_operators(
    condition: str, terms: list[str], expected: bool
) -> None:
    """Term, Phrase, And, Or and Not evaluate against the matched terms."""
    assert check(condition, findings(*terms)) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("sentiment > 0.5", False), ("sentiment >= 0.5", True), ("sentiment < 0.6", True),
        ("sentiment <= 0.4", False), ("sentiment = 0.5", True), ("sentiment != 0.5", False),
    ],
)
def test_matches_sentiment_comparisons(condition: str, expected: bool) -> None:
    """Each comparator compares the compound sentiment with the rule's value."""
    assert check(condition, findings(compound=0.5)) is expected


def test_matches_rejects_unknown_nodes() -> None:
    """A node type the evaluator does not know is a TypeError, never silently false."""
    with pytest.raises(TypeError):
        matches("doge", findings("doge"), frozenset({"doge"}))  # type: ignore[arg-type]


# --- evidence ---------------------------------------------------------------------------------


def test_evidence_has_only_positively_used_terms() -> None:
    """Hits of terms under NOT, or not in the condition, are left out of the evidence."""
    found = findings("doge", "scam", "moon", "to the moon")
    result = evidence(parse('(doge OR "to the moon") AND NOT scam'), found)
    assert [hit.term for hit in result.hits] == ["doge", "to the moon"]


def test_evidence_keeps_every_hit_of_a_used_term() -> None:
    """Repeated occurrences of a used term are all evidence, in text order."""
    found = findings("doge", "moon", "doge")
    assert [hit.start for hit in evidence(parse("doge"), found).hits] == [0, 20]


def test_evidence_sentiment_only_when_the_rule_uses_it() -> None:
    """The sentiment score is evidence only for rules that compare it positively."""
    found = findings("doge", compound=0.8)
    assert evidence(parse("doge"), found).sentiment is None
    assert evidence(parse("doge AND sentiment > 0.5"), found).sentiment == 0.8
    assert evidence(parse("doge AND NOT sentiment < 0"), found).sentiment is None


# --- alerts -----------------------------------------------------------------------------------


def test_alerts_for_builds_one_alert_per_matching_rule() -> None:
    """Only active rules whose condition matches fire; the alert carries rule, content and times."""
    book = RuleBook.of([
        Rule("doge-hype", 2, condition="doge AND sentiment > 0.5", severity="high",
             routes=("feed", "email")),
        Rule("scam", 1, condition="scam"),
        Rule("off", 1, enabled=False, condition="doge"),
        Rule("gone", 3, deleted=True),
    ])
    found = findings("doge", compound=0.9)
    (alert,) = alerts_for(analysed("DOGE to the moon", found), book, alerted_at=1_300)
    assert alert == Alert(
        alert_id=alert_id_for("doge-hype", "x:1"), revision=1, rule_id="doge-hype", rule_version=2,
        severity="high", content_key="x:1", platform="x", source="timeline", author="alice",
        url="https://x.com/1", excerpt="DOGE to the moon",
        evidence=Evidence(hits=(TermHit("doge", 0, 4),), sentiment=0.9),
        times=StageTimes(collected_at=1_000, ingested_at=1_100, analysed_at=1_200,
                         alerted_at=1_300),
        routes=("feed", "email"),
    )


def test_alert_id_is_stable_across_replays_and_rule_versions() -> None:
    """The same rule and content give the same alert_id on replay and after a rule edit."""
    item = analysed("doge", findings("doge"))
    first = alerts_for(item, RuleBook.of([Rule("r", 1, condition="doge")]), 1)
    again = alerts_for(item, RuleBook.of([Rule("r", 5, condition="doge OR moon")]), 2)
    assert first[0].alert_id == again[0].alert_id == alert_id_for("r", "x:1")
    assert (first[0].revision, again[0].revision) == (1, 1)


def test_excerpt_is_capped() -> None:
    """The excerpt is the first 280 characters of the text."""
    text = "doge " + "é" * 500
    book = RuleBook.of([Rule("r", 1, condition="doge")])
    (alert,) = alerts_for(analysed(text, findings("doge")), book, 1)
    assert EXCERPT_CHARS == 280 and alert.excerpt == text[:280]


def test_no_rules_no_alerts() -> None:
    """An empty book never alerts."""
    assert alerts_for(analysed("doge", findings("doge")), RuleBook(), 1) == []


# --- dedup ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("last", "expected"), [(None, True), (1, True), (2, False), (3, False)])
def test_is_new_only_for_newer_revisions(last: int | None, expected: bool) -> None:
    """An alert is forwarded if nothing was, or only an older revision was, forwarded before."""
    book = RuleBook.of([Rule("r", 1, condition="doge")])
    (alert,) = alerts_for(analysed("doge", findings("doge")), book, 1)
    assert is_new(dataclasses.replace(alert, revision=2), last) is expected
