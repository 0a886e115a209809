"""Unit tests of rule evaluation on one text: the RuleBook, conditions on findings, evidence, and
the alerts the job's path (fusion, then alert shaping) makes of them."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alert import Alert, Evidence, StageTimes, alert_id_for
from schemas.condition import parse
from schemas.content import ContentEvent
from schemas.findings import Entity, Sentiment, TermHit, TextFindings
from schemas.pipeline import Analysed
from schemas.rule import Rule, TrackedEntity
from udfs.alerting import EXCERPT_CHARS, RuleAlerts
from udfs.fusion import Content, matches
from udfs.query import Facts, evidence_hits, holds
from udfs.rules import RuleBook
from udfs.stories import DictStore, StoryIndex, story_id_of


def findings(*terms: str, compound: float = 0.0, lang: str | None = None,
             entities: tuple[Entity, ...] = ()) -> TextFindings:
    """Findings whose hits are the given terms, one word apart, ten characters apart."""
    hits = tuple(TermHit(term, 10 * i, 10 * i + len(term), i, i + 1)
                 for i, term in enumerate(terms))
    return TextFindings("x:1", Sentiment(compound, 0.0, 1.0, 0.0), hits=hits, lang=lang,
                        entities=entities)


def facts(found: TextFindings, platform: str = "x", author: str = "@Alice",
          source: str = "timeline") -> Facts:
    return Facts(found, platform, author, source)


def check(condition: str, found: TextFindings, **metadata: str) -> bool:
    return holds(parse(condition), facts(found, **metadata))


def analysed(text: str, found: TextFindings, author: str = "alice") -> Analysed:
    event = ContentEvent("x:1", "x", "timeline", author, 500, 1_000, text=text,
                         url="https://x.com/1")
    return Analysed(event, dataclasses.replace(found, analysed_at=1_200), ingested_at=1_100, analysed_at=1_200)


def alerts_for(item: Analysed, book: RuleBook, alerted_at: int) -> list[Alert]:
    """The job's path for a text-only item: fusion decides, each rule's alert shaping alerts."""
    content = Content(item.event.content_key)
    content.add(item.findings, item.event, item.ingested_at)
    found = matches(content, book.index, alerted_at)
    shaped = (RuleAlerts(StoryIndex(DictStore(), DictStore(), 60_000), DictStore(), DictStore()).on_match(m, 0, alerted_at)
              for m in found)
    return [alert for alerts, _ in shaped for alert in alerts]


def fired(book: RuleBook, found: TextFindings, text: str = "text",
          author: str = "alice") -> list[str]:
    """The ids of the rules that alert on these findings."""
    alerts = alerts_for(analysed(text, found, author), book, alerted_at=1)
    return [alert.rule_id for alert in alerts]


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


def test_index_is_compiled_once_per_change() -> None:
    """The compiled index is reused until a change is applied; a refused record keeps it."""
    book = RuleBook.of([Rule("r", 1, condition="doge")])
    first = book.index
    assert book.index is first
    book.apply(Rule("r", 1, condition="moon"))  # a replay: no change
    assert book.index is first
    book.apply(Rule("r", 2, condition="moon"))
    assert book.index is not first
    assert [compiled.rule.condition for compiled in book.index.rules] == ["moon"]


def test_index_holds_only_active_rules() -> None:
    """Disabled and deleted rules are not compiled, so they never fire."""
    book = RuleBook.of([Rule("on", 1, condition="doge"),
                        Rule("off", 1, enabled=False, condition="doge"),
                        Rule("gone", 2, deleted=True)])
    assert [compiled.rule.rule_id for compiled in book.index.rules] == ["on"]
    book.apply(Rule("on", 2, deleted=True))
    assert book.index.rules == [] and fired(book, findings("doge")) == []


def test_equal_books_stay_equal_after_compiling() -> None:
    """Two books holding the same rules are equal whether or not one has compiled its index."""
    compiled = RuleBook.of([Rule("r", 1, condition="a")])
    fresh = RuleBook.of([Rule("r", 1, condition="a")])
    assert compiled.index is not None
    assert compiled == fresh


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
    """Any order of the same rule versions gives the same book: the latest version of each rule,
    and the same rules firing."""
    history = data.draw(rule_histories())
    shuffled = data.draw(st.permutations(history))
    in_order, reordered = RuleBook.of(history), RuleBook.of(shuffled)
    assert reordered == in_order
    assert sorted(r.rule_id for r in reordered.active()) == sorted(
        r.rule_id for r in in_order.active())
    latest = {rule.rule_id: rule.version for rule in history}
    assert {rule_id: rule.version for rule_id, rule in reordered.rules.items()} == latest
    sample = findings("a", "e f", compound=0.3)
    assert sorted(fired(reordered, sample)) == sorted(fired(in_order, sample))


# --- holds ------------------------------------------------------------------------------------


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
        ("crypt*", ["crypt*"], True),
        ("$doge", ["doge"], False),  # the cashtag is its own term
    ],
)
def test_holds_for_terms_phrases_and_operators(
    condition: str, terms: list[str], expected: bool
) -> None:
    """Term, Phrase, wildcard, And, Or and Not evaluate against the hits' terms."""
    assert check(condition, findings(*terms)) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("sentiment > 0.5", False), ("sentiment >= 0.5", True), ("sentiment < 0.6", True),
        ("sentiment <= 0.4", False), ("sentiment = 0.5", True), ("sentiment != 0.5", False),
    ],
)
def test_holds_for_sentiment_comparisons(condition: str, expected: bool) -> None:
    """Each comparator compares the compound sentiment with the rule's value."""
    assert check(condition, findings(compound=0.5)) is expected


@pytest.mark.parametrize(
    ("terms", "distance", "expected"),
    [(["a", "x", "b"], 1, True), (["a", "x", "b"], 0, False), (["b", "a"], 0, True),
     (["a", "a"], 5, False)],
)
def test_holds_for_near_by_word_positions(terms: list[str], distance: int, expected: bool) -> None:
    """NEAR/n compares the words between two hits, in either order, and needs both terms."""
    assert check(f"a NEAR/{distance} b", findings(*terms)) is expected


DOMAINS = (Entity("https://m.bit.ly/x", "url", 0, 18), Entity("m.bit.ly", "domain", 8, 16))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("platform:x", True), ("platform:reddit", False),
        ("author:alice", True), ("author:@ALICE", True), ("author:ali*", True),
        ("author:bob", False),
        ("source:timeline", True), ("source:time*", True), ("source:news", False),
        ("lang:de", True), ("lang:en", False),
        ("domain:bit.ly", True), ("domain:m.bit.ly", True), ("domain:it.ly", False),
        ("domain:x.com", False),
    ],
)
def test_holds_for_fields(condition: str, expected: bool) -> None:
    """Fields compare the platform, author (without @, case-insensitively, * as prefix), source,
    language (region ignored) and domains (subdomains included, not mere suffixes)."""
    assert check(condition, findings(lang="de-AT", entities=DOMAINS)) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("entity(url)", True), ("entity(name)", True), ("entity(brand)", True),
        ("entity(person)", False), ('entity("Angela Merkel")', True), ('entity("tesla")', True),
        ('entity("TSLA motors")', True),
        ('entity("Berlin")', False),
    ],
)
def test_holds_for_entities(condition: str, expected: bool) -> None:
    """entity(type) asks for an entity of that type; entity("name") for one by its text or its
    tracked canonical name, case-insensitively."""
    entities = (Entity("Angela Merkel", "name", 0, 13),
                Entity("TSLA Motors", "brand", 20, 31, "Tesla")) + DOMAINS
    assert check(condition, findings(entities=entities)) is expected


def test_holds_rejects_unknown_nodes() -> None:
    """A node type the evaluator does not know is a TypeError, never silently false."""
    with pytest.raises(TypeError):
        holds("doge", facts(findings("doge")))  # type: ignore[arg-type]


# --- evidence ---------------------------------------------------------------------------------


def test_evidence_has_only_positively_used_terms() -> None:
    """Hits of terms under NOT, or not in the condition, are left out of the evidence."""
    found = findings("doge", "scam", "moon", "to the moon")
    result = evidence_hits(parse('(doge OR "to the moon") AND NOT scam'), facts(found))
    assert [hit.term for hit in result] == ["doge", "to the moon"]


def test_evidence_keeps_every_hit_of_a_used_term() -> None:
    """Repeated occurrences of a used term are all evidence, in text order."""
    found = findings("doge", "moon", "doge")
    assert [hit.start for hit in evidence_hits(parse("doge"), facts(found))] == [0, 20]


def test_evidence_includes_both_sides_of_near() -> None:
    """The terms on either side of NEAR/n are evidence."""
    found = findings("bitcoin", "will", "crash")
    result = evidence_hits(parse("bitcoin NEAR/3 crash"), facts(found))
    assert [hit.term for hit in result] == ["bitcoin", "crash"]


def test_evidence_sentiment_only_when_the_rule_compares_it() -> None:
    """The sentiment score is evidence only for rules that compare it."""
    book = RuleBook.of([Rule("plain", 1, condition="doge"),
                        Rule("hype", 1, condition="doge AND sentiment > 0.5")])
    alerts = alerts_for(analysed("doge", findings("doge", compound=0.8)), book, 1)
    assert {alert.rule_id: alert.evidence.sentiment for alert in alerts} == {
        "plain": None, "hype": 0.8}


def test_evidence_sentiment_not_for_a_negated_comparison() -> None:
    """A comparison under NOT is not evidence, like a term under NOT."""
    book = RuleBook.of([Rule("r", 1, condition="doge AND NOT sentiment < 0")])
    (alert,) = alerts_for(analysed("doge", findings("doge", compound=0.8)), book, 1)
    assert alert.evidence.sentiment is None


# --- alerts -----------------------------------------------------------------------------------


def test_alerts_for_builds_one_alert_per_matching_rule() -> None:
    """Only active rules whose condition holds fire; the alert carries rule, content and times."""
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
        evidence=Evidence(hits=(TermHit("doge", 0, 4, 0, 1),), sentiment=0.9),
        times=StageTimes(collected_at=1_000, ingested_at=1_100, analysed_at=1_200,
                         alerted_at=1_300),
        routes=("feed", "email"),
        story_id=story_id_of("x:1"),
    )


def test_rules_without_terms_fire_on_every_text() -> None:
    """Conditions that need no term hit (NOT, fields, sentiment) are evaluated on every text."""
    book = RuleBook.of([Rule("calm", 1, condition="NOT scam"),
                        Rule("mine", 1, condition="author:alice"),
                        Rule("happy", 1, condition="sentiment > 0.5"),
                        Rule("x", 1, condition="platform:x")])
    assert sorted(fired(book, findings(compound=0.9))) == ["calm", "happy", "mine", "x"]
    assert sorted(fired(book, findings("scam"), author="bob")) == ["x"]


def test_field_and_entity_rules_fire_through_alerts_for() -> None:
    """Field filters, entity types and entity names decide alerts like terms do."""
    book = RuleBook.of([
        Rule("link", 1, condition="domain:bit.ly AND entity(url)"),
        Rule("german", 1, condition="lang:de AND auto"),
        Rule("merkel", 1, condition='entity("Angela Merkel") AND berlin'),
        Rule("tesla", 1, condition='entity("Tesla")',
             entities=(TrackedEntity("Tesla", "brand", ("TSLA",)),)),
        Rule("person", 1, condition="entity(person)"),
    ])
    entities = (Entity("Angela Merkel", "name", 0, 13),
                Entity("TSLA", "brand", 30, 34, "Tesla")) + DOMAINS
    found = findings("angela merkel", "berlin", "auto", lang="de", entities=entities)
    assert fired(book, found) == ["link", "german", "merkel", "tesla"]
    assert fired(book, findings("angela merkel", "berlin", lang="en")) == []


def test_tracked_alias_fires_without_a_hit_of_the_name() -> None:
    """entity("Tesla") fires on a tracked alias entity even when no hit spells out 'tesla'."""
    book = RuleBook.of([Rule("t", 1, condition='entity("Tesla")',
                             entities=(TrackedEntity("Tesla", "brand", ("TSLA",)),))])
    assert fired(book, findings(entities=(Entity("TSLA", "brand", 0, 4, "Tesla"),))) == ["t"]


def test_alert_id_is_stable_across_replays_and_rule_versions() -> None:
    """The same rule and content give the same alert_id on replay and after a rule edit."""
    item = analysed("doge", findings("doge"))
    first = alerts_for(item, RuleBook.of([Rule("r", 1, condition="doge")]), 1)
    again = alerts_for(item, RuleBook.of([Rule("r", 5, condition="doge OR moon")]), 2)
    assert first[0].alert_id == again[0].alert_id == alert_id_for("r", "x:1")
    assert (first[0].revision, again[0].revision) == (1, 1)
    other = alerts_for(item, RuleBook.of([Rule("r2", 1, condition="doge")]), 1)
    assert other[0].alert_id != first[0].alert_id


def test_excerpt_is_capped() -> None:
    """The excerpt is the first 280 characters of the text."""
    text = "doge " + "é" * 500
    book = RuleBook.of([Rule("r", 1, condition="doge")])
    (alert,) = alerts_for(analysed(text, findings("doge")), book, 1)
    assert EXCERPT_CHARS == 280 and alert.excerpt == text[:280]


def test_no_rules_no_alerts() -> None:
    """An empty book never alerts."""
    assert alerts_for(analysed("doge", findings("doge")), RuleBook(), 1) == []
