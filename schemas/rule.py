"""Rule: a user's watch rule (compacted topic rules.v1), its acknowledgement, and the YAML format.

Every rules record carries `rule_id` and `version`; a deletion is `{rule_id, version, deleted:
true}` because PyFlink's Kafka source cannot carry a null value (a tombstone). The producer keys
by rule id, so compaction keeps the latest version. A rule file looks like:

    rules:
      - rule_id: doge-hype
        version: 1
        name: DOGE hype
        condition: '$doge AND sentiment > 0.5'
        severity: high
        entities:                     # optional: names the text analysis reports as typed entities
          - {name: Dogecoin, type: brand, aliases: [doge coin]}
        stories: true                 # optional (default): reposts of one text or picture are one alert
        window: {kind: spike, size: 1h, by: entity, sigma: 3}   # optional: see schemas/window.py

The condition language is schemas/condition.py. A rule with a `window` alerts on patterns of its
matches over time (thresholds, spikes, novelty, sequences) instead of on each match. Errors in a
YAML file name the file, line and column, and the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from schemas.codec import choices, decode
from schemas.condition import ConditionSyntaxError, parse
from schemas.errors import RecordError, RuleError
from schemas.textnorm import words
from schemas.window import WindowSpec

SEVERITIES = ("info", "low", "medium", "high", "critical")
TRACKED_TYPES = ("person", "org", "brand", "product", "place", "account", "ticker")


@dataclass(frozen=True)
class TrackedEntity:
    """A name a rule tracks: wherever it or an alias is written, the findings carry it typed."""

    name: str
    type: str = field(default="brand", metadata=choices(*TRACKED_TYPES))
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for alias in (self.name, *self.aliases):
            if not words(alias):
                raise RecordError(f"{alias!r} has no letters or digits", "name")
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


@dataclass(frozen=True)
class Rule:
    rule_id: str
    version: int
    deleted: bool = False
    name: str = ""
    owner: str = ""
    enabled: bool = True
    condition: str = ""
    severity: str = field(default="medium", metadata=choices(*SEVERITIES))
    routes: tuple[str, ...] = ("feed",)
    entities: tuple[TrackedEntity, ...] = ()
    stories: bool = True  # reposts of the same text or picture make one alert with a count
    window: WindowSpec | None = None
    schema_version: int = 1

    def __post_init__(self) -> None:
        if not _RULE_ID.fullmatch(self.rule_id):
            raise RuleError(self.rule_id, "rule_id must be 1-128 of A-Z a-z 0-9 _ . : - ")
        if self.version < 1:
            raise RuleError(self.rule_id, "version must be >= 1")
        if self.deleted:
            return
        for name, condition in (("condition", self.condition), ("window.then", self.window and self.window.then)):
            if name == "condition" or condition:
                try:
                    parse(condition)
                except ConditionSyntaxError as exc:
                    raise RuleError(self.rule_id, f"{name}: {exc.message}", exc.position, name) from exc

    @property
    def active(self) -> bool:
        return self.enabled and not self.deleted


@dataclass(frozen=True)
class RuleAck:
    """An operator reports the rule version it now applies (topic rules.acks.v1).

    `operators` lists every operator of the job that holds rules, and `subtasks` its parallelism,
    so a waiting client knows when all of them have the version.
    """

    rule_id: str
    version: int
    operator: str
    subtask: int
    subtasks: int
    operators: tuple[str, ...]
    error: str | None = None
    schema_version: int = 1


def decode_rule(raw: bytes | str | dict[str, Any]) -> Rule:
    return decode(Rule, raw)


def load_rules_yaml(text: str, source: str = "<rules>") -> list[Rule]:
    """Rules of a YAML file; a RuleError names the file, line, rule and problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise RuleError(None, f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(None, f"{source}: expected a mapping with a 'rules' list")
    nodes = _rule_nodes(root)
    rules, seen = [], set()
    for item, node in zip(data["rules"], nodes):
        line = node.start_mark.line + 1
        if not isinstance(item, dict):
            raise RuleError(None, f"{source}:{line}: each rule must be a mapping of fields")
        rule_id = item.get("rule_id")
        try:
            rule = decode_rule(item)
        except RuleError as exc:
            where = _where(source, node, exc.field, exc.position) or f"{source}:{line}"
            raise RuleError(rule_id, f"{where}: {exc.detail}", exc.position, exc.field) from exc
        except RecordError as exc:
            field_path = exc.field or ""
            where = _where(source, node, field_path, None) or _where(source, node, field_path.split(".")[0], None)
            raise RuleError(rule_id, f"{where or f'{source}:{line}'}: {exc}") from exc
        if rule.rule_id in seen:
            raise RuleError(rule.rule_id, f"{source}:{line}: duplicate rule_id")
        seen.add(rule.rule_id)
        rules.append(rule)
    return rules


def _where(source: str, rule: yaml.Node, name: str | None, position: int | None) -> str | None:
    """file:line:column of a field of a rule, or of the character `position` of its value."""
    value = _value_node(rule, name)
    if value is None:
        return None
    line, column = value.start_mark.line + 1, value.start_mark.column + 1
    if position is not None and isinstance(value, yaml.ScalarNode):
        if value.style in ("|", ">"):  # a block: the text starts on the next line, indented
            before = value.value[:position]
            line += 1 + before.count("\n")
            indent = value.end_mark.column if value.end_mark.column else _indent(value)
            column = indent + 1 + len(before.rsplit("\n", 1)[-1])
        else:
            column += position + (1 if value.style in ("'", '"') else 0)
    return f"{source}:{line}:{column}"


def _value_node(rule: yaml.Node, name: str | None) -> yaml.Node | None:
    node = rule
    for key in (name or "").split("."):
        if not key or not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for k, value in node.value if k.value == key), None)
        if node is None:
            return None
    return node if name else None


def _indent(node: yaml.ScalarNode) -> int:
    lines = node.start_mark.buffer[node.start_mark.pointer:].split("\n")[1:2] if node.start_mark.buffer else []
    return len(lines[0]) - len(lines[0].lstrip(" ")) if lines else node.start_mark.column + 2


def _rule_nodes(root: yaml.Node) -> list[yaml.Node]:
    for key, value in root.value:
        if key.value == "rules":
            return list(value.value)
    return []
