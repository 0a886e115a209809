"""Alert shaping per rule: stories and revisions, and windowed rules' alerts."""

from __future__ import annotations

from schemas.alert import Evidence
from schemas.content import ContentEvent
from schemas.findings import TermHit
from schemas.pipeline import RuleMatch
from schemas.rule import Rule
from schemas.window import WindowSpec
from udfs.alerting import RuleAlerts
from udfs.stories import DictStore, StoryIndex

TEXT = "Breaking: the exchange has paused all withdrawals after a security incident tonight"
MINUTE = 60_000
NO_EVIDENCE = Evidence()


def shaper() -> RuleAlerts:
    return RuleAlerts(StoryIndex(DictStore(), DictStore(), 3_600_000), DictStore(), DictStore())


def match(rule: Rule, key: str, text: str = TEXT, revision: int = 1, published_at: int = 0, source: str = "s",
          entities: tuple[str, ...] = (), step: int = 0, evidence: Evidence = NO_EVIDENCE) -> RuleMatch:
    event = ContentEvent(key, "x", source, f"author-{key}", published_at, published_at + 1, text=text)
    return RuleMatch(rule, event, evidence, revision, 2, 3, 4, entities=entities, step=step)


def test_reposts_are_one_story_and_one_alert_with_revisions() -> None:
    rule, alerts = Rule("outage", 1, condition="withdrawals"), shaper()
    (first,), _ = alerts.on_match(match(rule, "x:1"), 0, 10)
    (second,), _ = alerts.on_match(match(rule, "x:2", "RT @news: " + TEXT + " https://t.co/x"), 0, 11)
    (other,), _ = alerts.on_match(match(rule, "x:3", "Completely different news about a new phone launch today"), 0, 12)
    assert second.alert_id == first.alert_id and second.story_id == first.story_id
    assert (first.revision, first.story_count, second.revision, second.story_count) == (1, 1, 2, 2)
    assert other.alert_id != first.alert_id and other.story_count == 1


def test_new_evidence_for_an_item_is_a_revision_without_a_new_member() -> None:
    rule, alerts = Rule("outage", 1, condition="withdrawals"), shaper()
    (first,), _ = alerts.on_match(match(rule, "x:1"), 0, 10)
    evidence = Evidence(hits=(TermHit("withdrawals", 0, 11),), objects={"person": 2})
    (again,), _ = alerts.on_match(match(rule, "x:1", revision=2, evidence=evidence), 0, 11)
    assert (again.alert_id, again.revision, again.story_count) == (first.alert_id, 2, 1)
    assert again.evidence.objects == {"person": 2}


def test_without_stories_each_item_has_its_own_alert() -> None:
    rule, alerts = Rule("outage", 1, condition="withdrawals", stories=False), shaper()
    (a,), _ = alerts.on_match(match(rule, "x:1"), 0, 10)
    (b,), _ = alerts.on_match(match(rule, "x:2"), 0, 10)
    assert a.alert_id != b.alert_id and a.story_id is None


def test_a_threshold_window_fires_once_with_its_count() -> None:
    spec = WindowSpec(kind="threshold", size="5m", threshold=2)
    rule, alerts = Rule("burst", 1, condition="withdrawals", window=spec), shaper()
    fired = [alerts.on_match(match(rule, f"x:{i}", published_at=i * 1000), 0, 10)[0] for i in range(4)]
    assert [len(found) for found in fired] == [0, 0, 1, 0]
    (alert,) = fired[2]
    assert (alert.window.kind, alert.window.count, alert.window.threshold) == ("threshold", 3, 2)
    assert alert.window.window_start == 0 and alert.window.window_end == 5 * MINUTE


def test_a_sequence_fires_when_the_watermark_passes_step_b() -> None:
    spec = WindowSpec(kind="sequence", size="10m", then="dump")
    rule, alerts = Rule("pump-dump", 1, condition="pump", window=spec), shaper()
    assert alerts.on_match(match(rule, "x:1", published_at=MINUTE), 0, 10) == ([], 0)
    assert alerts.on_match(match(rule, "x:2", published_at=3 * MINUTE, step=1), 0, 10) == ([], 0)
    assert alerts.next_timer() is not None
    (alert,) = alerts.on_watermark(4 * MINUTE, 20)
    assert alert.window.kind == "sequence" and alert.window.group == "s"
    assert alerts.on_watermark(5 * MINUTE, 21) == []  # once


def test_late_matches_are_counted_as_late() -> None:
    spec = WindowSpec(kind="threshold", size="1m", threshold=5)
    rule, alerts = Rule("burst", 1, condition="x", window=spec), shaper()
    assert alerts.on_match(match(rule, "x:1", published_at=0), 10 * MINUTE, 10) == ([], 1)


def test_a_changed_window_restarts_its_counts() -> None:
    spec = WindowSpec(kind="threshold", size="5m", threshold=1)
    rule, alerts = Rule("burst", 1, condition="x", window=spec), shaper()
    alerts.on_match(match(rule, "x:1"), 0, 10)
    assert not alerts.on_rule(rule)  # same window: kept
    assert alerts.on_rule(Rule("burst", 2, condition="x", window=WindowSpec(kind="threshold", size="1h", threshold=1)))
    assert alerts.windows.items() == []
    assert alerts.on_rule(Rule("burst", 3, deleted=True)) is False  # nothing left to drop


def test_a_repeated_match_makes_no_alert_and_a_window_counts_an_item_once() -> None:
    """A duplicate event (or one decided again after fusion forgot it) repeats its evidence."""
    rule, alerts = Rule("outage", 1, condition="withdrawals"), shaper()
    assert len(alerts.on_match(match(rule, "x:1"), 0, 10)[0]) == 1
    assert alerts.on_match(match(rule, "x:1"), 0, 11) == ([], 0)
    spec = WindowSpec(kind="threshold", size="5m", threshold=1)
    windowed, alerts = Rule("burst", 1, condition="x", window=spec), shaper()  # one shaper per rule
    alerts.on_match(match(windowed, "x:1"), 0, 10)
    assert alerts.on_match(match(windowed, "x:1", revision=2, evidence=Evidence(faces=1)), 0, 10) == ([], 0)
    (alert,), _ = alerts.on_match(match(windowed, "x:2"), 0, 10)
    assert alert.window.count == 2
