"""`trackius rules test`: the job's analysis, fusion and rule evaluation on a JSON-lines file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from schemas.rule import load_rules_yaml
from trackius.rulestest import rules_test
from trackius.settings import SHARED_DATA, Settings

BUS = SHARED_DATA / "images" / "ultralytics" / "bus.jpg"
RULES = """rules:
  - {rule_id: doge, version: 1, condition: '$doge AND sentiment > 0.3'}
  - {rule_id: bus, version: 1, condition: 'commute AND object("bus") >= 1 AND object("person") >= 2'}
  - {rule_id: logo, version: 1, condition: 'image_match("acme") OR faces >= 20'}
  - {rule_id: burst, version: 1, condition: '$doge', window: {kind: threshold, size: 5m, threshold: 1}}
"""


def line(key: str, text: str, **extra: object) -> str:
    record = {"content_key": key, "platform": "x", "source": "s", "author": "a", "published_at": 1,
              "collected_at": 2, "text": text, **extra}
    return json.dumps(record)


@pytest.mark.skipif(not BUS.is_file(), reason="shared images missing")
def test_prints_the_fired_rules_of_every_event_in_order(tmp_path: Path) -> None:
    rules, events = tmp_path / "rules.yaml", tmp_path / "events.jsonl"
    rules.write_text(RULES)
    events.write_text("\n".join([
        line("x:1", "I love $DOGE, what a great day"),
        '{"content_key": "x:2", "platform": ',
        line("x:3", "stuck in my commute again", parts=[{"part_id": "p", "kind": "image", "uri": BUS.as_uri()}]),
        line("x:4", "nothing to see here"),
    ]) + "\n")
    errors = io.StringIO()
    out = [json.loads(found) for found in rules_test(Settings(), load_rules_yaml(rules.read_text()), events, errors)]
    assert out == [{"content_key": "x:1", "fired": ["burst", "doge"]},
                   {"content_key": "x:3", "fired": ["bus"]},
                   {"content_key": "x:4", "fired": []}]
    assert "line 2: malformed JSON" in errors.getvalue()
