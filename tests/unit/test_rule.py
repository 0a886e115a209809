"""Unit tests of the Rule record and the YAML rule file format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.codec import encode
from schemas.errors import RecordError, RuleError
from schemas.rule import Rule, decode_rule, load_rules_yaml


def rule_dict(**changes: Any) -> dict[str, Any]:
    base = {"rule_id": "doge-hype", "version": 1, "condition": "$doge AND sentiment > 0.5"}
    return {**base, **changes}


def rule_error(raw: Any) -> RuleError:
    with pytest.raises(RuleError) as info:
        decode_rule(raw)
    return info.value


def yaml_error(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_rules_yaml(text, "rules/demo.yaml")
    return info.value


# --- decode_rule ------------------------------------------------------------------------------


def test_decode_rule_with_defaults() -> None:
    """A minimal rule gets the documented defaults and is active."""
    rule = decode_rule(json.dumps(rule_dict()).encode())
    assert rule == Rule("doge-hype", 1, condition="$doge AND sentiment > 0.5")
    assert (rule.severity, rule.routes, rule.enabled, rule.deleted, rule.active) == (
        "medium", ("feed",), True, False, True)


def test_rule_round_trips_through_the_codec() -> None:
    """encode then decode_rule gives an equal Rule."""
    rule = Rule("r.1:a_b-c", 7, name="n", owner="o", enabled=False, condition='"x y" OR z',
                severity="critical", routes=("feed", "slack"))
    assert decode_rule(encode(rule)) == rule


@pytest.mark.parametrize("rule_id", ["a", "9", "A-1_b.c:d", "a" * 128])
def test_valid_rule_ids_are_accepted(rule_id: str) -> None:
    """Rule ids of 1-128 chars of A-Z a-z 0-9 _ . : - starting alphanumeric are accepted."""
    assert decode_rule(rule_dict(rule_id=rule_id)).rule_id == rule_id


@pytest.mark.parametrize("rule_id", ["", "-a", ".a", "a b", "a/b", "règle", "a" * 129])
def test_invalid_rule_ids_are_rejected(rule_id: str) -> None:
    """Any other rule id is a RuleError naming the allowed characters."""
    error = rule_error(rule_dict(rule_id=rule_id))
    assert error.rule_id == rule_id and error.detail.startswith("rule_id must be 1-128 of")


def test_rule_id_with_trailing_newline_is_rejected() -> None:
    """'doge\\n' is not a valid rule id."""
    rule_error(rule_dict(rule_id="doge\n"))


@pytest.mark.parametrize("version", [0, -1])
def test_version_below_one_is_rejected(version: int) -> None:
    """Versions start at 1."""
    assert rule_error(rule_dict(version=version)).detail == "version must be >= 1"


def test_version_must_be_an_int() -> None:
    """A string version is a RecordError naming the field."""
    with pytest.raises(RecordError) as info:
        decode_rule(rule_dict(version="2"))
    assert (info.value.field, info.value.reason) == ("version", "expected int, got string")


def test_deleted_record_needs_no_condition() -> None:
    """{rule_id, version, deleted: true} is a valid deletion and is not active."""
    rule = decode_rule({"rule_id": "doge-hype", "version": 4, "deleted": True})
    assert rule.deleted and not rule.active and rule.condition == ""


def test_disabled_rule_is_not_active() -> None:
    """enabled: false keeps the rule but makes it inactive."""
    assert not decode_rule(rule_dict(enabled=False)).active


def test_missing_condition_is_an_empty_condition_error() -> None:
    """A live rule without a condition fails as an empty condition at position 0."""
    error = rule_error({"rule_id": "r", "version": 1})
    assert (error.detail, error.position) == ("condition: empty condition", 0)


def test_invalid_condition_gives_rule_and_position() -> None:
    """A syntax error in the condition is a RuleError with the rule id and 0-based position."""
    error = rule_error(rule_dict(condition="$doge AND (moon OR"))
    assert (error.rule_id, error.detail, error.position) == (
        "doge-hype", "condition: unexpected end of condition", 18)
    assert str(error) == "rule doge-hype: condition: unexpected end of condition at position 18"


def test_bad_severity_is_rejected() -> None:
    """severity must be one of the SEVERITIES."""
    with pytest.raises(RecordError) as info:
        decode_rule(rule_dict(severity="urgent"))
    assert info.value.field == "severity"


def test_rule_error_is_a_record_error() -> None:
    """A bad rules record is a RecordError, so it becomes a dead letter like any other."""
    assert isinstance(rule_error(rule_dict(version=0)), RecordError)


# --- load_rules_yaml --------------------------------------------------------------------------

GOOD = """\
rules:
  - rule_id: doge-hype
    version: 1
    name: DOGE hype
    condition: '$doge AND sentiment > 0.5'
    severity: high
  - rule_id: scam-watch
    version: 3
    condition: '"rug pull" OR scam'
    routes: [feed, email]
"""


def test_load_good_file() -> None:
    """A well-formed file gives its rules in order, fully decoded."""
    assert load_rules_yaml(GOOD, "rules/demo.yaml") == [
        Rule("doge-hype", 1, name="DOGE hype", condition="$doge AND sentiment > 0.5",
             severity="high"),
        Rule("scam-watch", 3, condition='"rug pull" OR scam', routes=("feed", "email")),
    ]


def test_load_empty_rules_list() -> None:
    """'rules: []' is a valid file with no rules."""
    assert load_rules_yaml("rules: []\n") == []


def test_yaml_syntax_error_names_file_line_and_column() -> None:
    """Invalid YAML is a RuleError giving file:line:column (1-based) and the YAML problem."""
    error = yaml_error("rules:\n  - rule_id: a\n\tversion: 1\n")
    assert error.rule_id is None
    assert error.detail.startswith("rules/demo.yaml:3:1: invalid YAML: found character '\\t'")


@pytest.mark.parametrize(
    "text", ["", "rules: 3\n", "rules: {a: 1}\n", "rule: []\n", "- rule_id: a\n"]
)
def test_missing_rules_list_is_rejected(text: str) -> None:
    """A file that is not a mapping with a 'rules' list is rejected, naming the file."""
    assert yaml_error(text).detail == "rules/demo.yaml: expected a mapping with a 'rules' list"


def test_bad_rule_names_file_line_rule_and_position() -> None:
    """A bad condition names the file, the line and column in it, the rule id and the position."""
    text = GOOD + "  - rule_id: broken\n    version: 1\n    condition: 'a AND'\n"
    error = yaml_error(text)
    assert (error.rule_id, error.position) == ("broken", 5)
    assert error.detail == "rules/demo.yaml:13:22: condition: unexpected end of condition"  # line:column of the end


def test_bad_field_in_a_rule_names_file_line_and_field() -> None:
    """A wrongly typed field is reported with the file, the rule's line and the field."""
    text = GOOD + "  - rule_id: typo\n    version: one\n    condition: x\n"
    error = yaml_error(text)
    assert error.rule_id == "typo"
    assert error.detail == "rules/demo.yaml:12:14: version: expected int, got string"


def test_unknown_key_in_a_rule_is_rejected() -> None:
    """A misspelt key is not silently ignored."""
    error = yaml_error("rules:\n  - rule_id: a\n    version: 1\n    condtion: x\n")
    assert error.detail == "rules/demo.yaml:2: unknown field(s) condtion"


def test_duplicate_rule_ids_are_rejected_at_the_second() -> None:
    """A rule id used twice in one file is an error at the second occurrence."""
    text = GOOD + "  - rule_id: doge-hype\n    version: 2\n    condition: doge\n"
    error = yaml_error(text)
    assert (error.rule_id, error.detail) == ("doge-hype", "rules/demo.yaml:11: duplicate rule_id")


def test_rule_item_that_is_a_string_is_rejected() -> None:
    """Each item under 'rules' must be a mapping, even if it is a string holding JSON."""
    yaml_error("""rules:\n  - '{"rule_id": "a", "version": 1, "condition": "a"}'\n""")
