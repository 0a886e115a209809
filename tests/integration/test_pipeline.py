"""The whole path on the real local stack: Kafka -> the job -> Kafka, Cassandra and the feed."""

from __future__ import annotations

import base64
import json
import time

import pytest

from schemas.rule import Rule
from tests.integration.system import System, event, unique, wait_rows

pytestmark = pytest.mark.integration


def test_events_alert_on_the_feed_and_in_cassandra(system: System, cassandra) -> None:
    """Matching events reach a WebSocket client and Cassandra; a non-matching one does not alert."""
    rule_id, key = unique("hype"), unique("x:hype")
    system.apply(Rule(rule_id, 1, condition='$doge AND sentiment > 0.3 AND NOT "not financial"'))
    system.produce(
        event(f"{key}-1", "I love $DOGE, best day ever"),
        event(f"{key}-2", "$doge to the moon, fantastic!"),
        event(f"{key}-3", "$doge is awful and I hate it"),
        event(f"{key}-4", "I love $doge (not financial advice)"),
    )
    items = system.feed([rule_id], count=2)
    assert sorted(i["alert"]["content_key"] for i in items) == [f"{key}-1", f"{key}-2"]
    assert system.feed([rule_id], count=3, timeout_s=3) == items  # nothing else arrives
    session = cassandra
    rows = wait_rows(session, "SELECT alert_id, content_key FROM alerts_by_rule WHERE rule_id=%s", (rule_id,), 2)
    assert {row.alert_id for row in rows} == {i["alert"]["alert_id"] for i in items}
    found = wait_rows(session, "SELECT findings_json FROM findings_by_content WHERE content_key=%s", (f"{key}-3",), 1)
    assert json.loads(found[0].findings_json)["sentiment"]["compound"] < 0


def test_bad_events_dead_letter_while_good_ones_alert(system: System, cassandra) -> None:
    """Malformed, mistyped, non-UTF-8 and unknown-platform events get reasons; the rest still alerts."""
    rule_id, key = unique("dl"), unique("x:dl")
    system.apply(Rule(rule_id, 1, condition=f'"{key}" OR zebracorn'))
    huge = "zebracorn sighting! " + "x" * (1024 * 1024)
    oversized_garbage = b"{" + b"a" * (3 * 1024 * 1024)
    system.produce(
        b'{"content_key": "' + key.encode() + b'-a", "platform":',
        event(f"{key}-b", "zebracorn", published_at="yesterday"),
        b"\xc3\x28 zebracorn " + key.encode(),
        event(f"myspace:{key}", "zebracorn"),
        oversized_garbage,
        event(f"{key}-good", "a zebracorn appeared"),
        event(f"{key}-huge", huge),
    )
    items = system.feed([rule_id], count=2)
    assert sorted(i["alert"]["content_key"] for i in items) == [f"{key}-good", f"{key}-huge"]
    letters = system.topic(system.settings.topics.deadletter,
                           lambda d: key in _payload(d) or d["payload_bytes"] > 3 * 1024 * 1024, 5)
    reasons = sorted(d["reason"] for d in letters)
    assert any(r.startswith("malformed JSON") for r in reasons)
    assert "published_at: expected int, got string" in reasons
    assert "invalid UTF-8 at byte 0: invalid continuation byte" in reasons
    assert any(r.startswith("platform: 'myspace' is not one of") for r in reasons)
    big = next(d for d in letters if d["payload_bytes"] > 3 * 1024 * 1024)
    assert big["truncated"] and len(big["payload"]) == 64 * 1024 and len(big["payload_sha256"]) == 64
    session = cassandra
    row = wait_rows(session, "SELECT findings_json FROM findings_by_content WHERE content_key=%s", (f"{key}-huge",), 1)
    findings = json.loads(row[0].findings_json)
    assert findings["truncated"] is True and findings["text_chars"] == len(huge)


def test_rule_changes_take_effect_without_restart(system: System, cassandra) -> None:
    """A rule added, changed and deleted at run time changes what fires, in order."""
    rule_id, key = unique("live"), unique("x:live")
    system.produce(event(f"{key}-before", "quokka news"))
    time.sleep(1)
    system.apply(Rule(rule_id, 1, condition="quokka"))
    system.produce(event(f"{key}-v1", "quokka news"))
    system.apply(Rule(rule_id, 2, condition="wombat"))
    system.produce(event(f"{key}-v2-old", "quokka again"), event(f"{key}-v2-new", "wombat news"))
    system.apply(Rule(rule_id, 3, deleted=True))
    system.produce(event(f"{key}-deleted", "wombat and quokka"))
    items = system.feed([rule_id], count=3, timeout_s=8)
    assert [(i["alert"]["content_key"], i["alert"]["rule_version"]) for i in items] == [
        (f"{key}-v1", 1), (f"{key}-v2-new", 2)]


def test_invalid_rule_on_the_topic_is_dead_lettered(system: System, cassandra) -> None:
    """A rule record with a syntax error that bypassed the CLI becomes a dead letter, not a crash."""
    from connectors.kafka import producer

    rule_id = unique("broken")
    client = producer(system.settings)
    client.send(system.settings.topics.rules, key=rule_id.encode(),
                value=json.dumps({"rule_id": rule_id, "version": 1, "condition": "a AND (b"}).encode())
    client.flush()
    letters = system.topic(system.settings.topics.deadletter, lambda d: rule_id in d["payload"], 1)
    assert letters and letters[0]["stage"] == "rules"
    assert "'(' is never closed at position 6" in letters[0]["reason"]


def _payload(letter: dict) -> str:
    if letter["payload_encoding"] == "base64":
        return base64.b64decode(letter["payload"]).decode("latin-1")
    return letter["payload"]
