"""The rules an operator holds: the latest version of every rule, compiled when they change.

A RuleBook compiles the active rules into a RuleIndex (udfs/query.py) once per change; applying a
rule record returns whether anything changed (an older version never replaces a newer one, so
replays and reordering are harmless). Evaluation is udfs/fusion.py's, alerts udfs/alerting.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.rule import Rule
from udfs.query import RuleIndex


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
