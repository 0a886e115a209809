"""Rule evaluation core: which active rules a content item's findings satisfy, and the evidence.

Pure: the caller passes the clock readings in. A RuleBook holds the latest version of every rule
and compiles the active ones into a RuleIndex when they change; applying a rule record returns
whether anything changed (an older version never replaces a newer one, so replays and reordering
are harmless).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.alert import Alert, Evidence, StageTimes, alert_id_for
from schemas.pipeline import Analysed
from schemas.rule import Rule
from udfs.query import CompiledRule, Facts, RuleIndex, evidence_hits, uses_sentiment

EXCERPT_CHARS = 280


@dataclass
class RuleBook:
    rules: dict[str, Rule] = field(default_factory=dict)  # latest version seen, deleted included
    _index: RuleIndex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> RuleBook:
        book = cls()
        for rule in rules:
            book.apply(rule)
        return book

    def apply(self, rule: Rule) -> bool:
        current = self.rules.get(rule.rule_id)
        if current is not None and current.version >= rule.version:
            return False
        self.rules[rule.rule_id] = rule
        self._index = None
        return True

    def active(self) -> list[Rule]:
        return [rule for rule in self.rules.values() if rule.active]

    @property
    def index(self) -> RuleIndex:
        """The active rules compiled (once per change)."""
        if self._index is None:
            self._index = RuleIndex(self.active())
        return self._index


def is_new(alert: Alert, last_revision: int | None) -> bool:
    """Dedup: forward an alert only if its revision is newer than the last one forwarded."""
    return last_revision is None or alert.revision > last_revision


def alerts_for(item: Analysed, book: RuleBook, alerted_at: int) -> list[Alert]:
    event = item.event
    facts = Facts(item.findings, event.platform, event.author, event.source)
    return [_alert(rule, facts, item, alerted_at) for rule in book.index.fired(facts)]


def _alert(compiled: CompiledRule, facts: Facts, item: Analysed, alerted_at: int) -> Alert:
    rule, event = compiled.rule, item.event
    evidence = Evidence(
        hits=evidence_hits(compiled.node, facts),
        sentiment=item.findings.sentiment.compound if uses_sentiment(compiled.node) else None,
    )
    return Alert(
        alert_id=alert_id_for(rule.rule_id, event.content_key),
        revision=1,
        rule_id=rule.rule_id,
        rule_version=rule.version,
        severity=rule.severity,
        content_key=event.content_key,
        platform=event.platform,
        source=event.source,
        author=event.author,
        url=event.url,
        excerpt=event.text[:EXCERPT_CHARS],
        evidence=evidence,
        times=StageTimes(event.collected_at, item.ingested_at, item.analysed_at, alerted_at),
        routes=rule.routes,
    )
