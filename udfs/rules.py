"""Rule evaluation core: which active rules a content item's findings satisfy, and the evidence.

Pure: the caller passes the clock readings in. A RuleBook is the set of active rules, compiled
once per change; applying a rule record returns whether anything changed (an older version of a
rule never replaces a newer one, so replays and reordering are harmless).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.alert import Alert, Evidence, StageTimes, alert_id_for
from schemas.condition import And, Node, Not, Or, Phrase, SentimentCompare, Term, parse
from schemas.findings import TextFindings
from schemas.pipeline import Analysed
from schemas.rule import Rule

EXCERPT_CHARS = 280
_COMPARE = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


@dataclass
class RuleBook:
    rules: dict[str, Rule] = field(default_factory=dict)  # latest version seen, deleted included

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
        return True

    def active(self) -> list[Rule]:
        return [rule for rule in self.rules.values() if rule.active]


def matches(node: Node, findings: TextFindings, matched: frozenset[str]) -> bool:
    if isinstance(node, Term):
        return node.text in matched
    if isinstance(node, Phrase):
        return " ".join(node.words) in matched
    if isinstance(node, SentimentCompare):
        return _COMPARE[node.op](findings.sentiment.compound, node.value)
    if isinstance(node, And):
        return all(matches(item, findings, matched) for item in node.items)
    if isinstance(node, Or):
        return any(matches(item, findings, matched) for item in node.items)
    if isinstance(node, Not):
        return not matches(node.item, findings, matched)
    raise TypeError(f"unknown condition node {node!r}")


def evidence(node: Node, findings: TextFindings) -> Evidence:
    """The hits and scores the condition used positively (what a person checks in the alert)."""
    wanted: set[str] = set()
    uses_sentiment = False
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Term):
            wanted.add(current.text)
        elif isinstance(current, Phrase):
            wanted.add(" ".join(current.words))
        elif isinstance(current, SentimentCompare):
            uses_sentiment = True
        elif isinstance(current, (And, Or)):
            stack.extend(current.items)
    hits = tuple(hit for hit in findings.hits if hit.term in wanted)
    return Evidence(hits=hits, sentiment=findings.sentiment.compound if uses_sentiment else None)


def is_new(alert: Alert, last_revision: int | None) -> bool:
    """Dedup: forward an alert only if its revision is newer than the last one forwarded."""
    return last_revision is None or alert.revision > last_revision


def alerts_for(item: Analysed, book: RuleBook, alerted_at: int) -> list[Alert]:
    matched = item.findings.matched()
    alerts = []
    for rule in book.active():
        node = parse(rule.condition)
        if matches(node, item.findings, matched):
            alerts.append(_alert(rule, node, item, alerted_at))
    return alerts


def _alert(rule: Rule, node: Node, item: Analysed, alerted_at: int) -> Alert:
    event = item.event
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
        evidence=evidence(node, item.findings),
        times=StageTimes(event.collected_at, item.ingested_at, item.analysed_at, alerted_at),
        routes=rule.routes,
    )
