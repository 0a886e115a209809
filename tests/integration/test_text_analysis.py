"""Text analysis at full depth through the running job: the query language, tracked names, the
spam classifier and the findings stored in Cassandra."""

from __future__ import annotations

import json

import pytest

from schemas.rule import Rule, TrackedEntity
from tests.integration.system import System, event, unique, wait_rows

pytestmark = pytest.mark.integration

FINDINGS = "SELECT findings_json FROM findings_by_content WHERE content_key=%s"


def test_listening_query_fires_with_spans_as_evidence(system: System, cassandra) -> None:
    """NEAR/n, a wildcard, a group, NOT and field filters decide in the job; the evidence spans
    point into the text as published, accents and line breaks included."""
    rule_id, key = unique("near"), unique("x:near")
    system.apply(Rule(rule_id, 1, condition="(bitcoin OR btc) NEAR/3 crash* AND NOT satire AND platform:x"))
    text = "Analysts: BTC could\nreally CRASHÉS — or not"
    system.produce(
        event(f"{key}-hit", text),
        event(f"{key}-far", "bitcoin is a fine thing to hold, they say, until the crash"),
        event(f"{key}-satire", "btc crashing (satire)"),
        event(unique("reddit:near"), "btc crashing"),
    )
    (item,) = system.feed([rule_id], count=1, timeout_s=30)
    alert = item["alert"]
    assert alert["content_key"] == f"{key}-hit"
    assert [(h["term"], text[h["start"]:h["end"]]) for h in alert["evidence"]["hits"]] == [
        ("btc", "BTC"), ("crash*", "CRASHÉS")]
    assert system.feed([rule_id], count=2, timeout_s=3) == [item]  # nothing else fires


def test_scam_rule_uses_the_classifier_and_tracked_names(system: System, cassandra) -> None:
    """A trust-and-safety rule combines the ONNX spam score with a tracked brand named by an
    alias; the stored findings carry the score, the typed entities, sentences and the language."""
    rule_id, key = unique("scam"), unique("x:scam")
    system.apply(Rule(rule_id, 1, condition='classifier("spam") > 0.5 AND entity("Acme")',
                      entities=(TrackedEntity("Acme", "brand", ("ACME Corp",)),)))
    scam = ("WINNER!! ACME Corp has selected you for a £1000 prize. Claim now at bit.ly/acme-win "
            "or call 09061701461. Txt STOP to end.")
    system.produce(
        event(f"{key}-scam", scam),
        event(f"{key}-ham", "Had lunch with the ACME Corp team today, nice people."),
    )
    (item,) = system.feed([rule_id], count=1, timeout_s=30)
    assert item["alert"]["content_key"] == f"{key}-scam"
    (row,) = wait_rows(cassandra, FINDINGS, (f"{key}-scam",), 1)
    findings = json.loads(row.findings_json)
    assert findings["classifiers"]["spam"] > 0.5
    assert findings["lang"] == "en" and len(findings["sentences"]) >= 2
    typed = {(e["type"], scam[e["start"]:e["end"]]) for e in findings["entities"]}
    assert {("brand", "ACME Corp"), ("domain", "bit.ly"), ("url", "bit.ly/acme-win")} <= typed
    (ham,) = wait_rows(cassandra, FINDINGS, (f"{key}-ham",), 1)
    assert json.loads(ham.findings_json)["classifiers"]["spam"] < 0.5


def test_awkward_texts_are_analysed_and_flagged(system: System, cassandra) -> None:
    """Invalid UTF-8 inside the record, emoji only, an unsegmented script: each is analysed,
    flagged, and still alerts when its words match."""
    rule_id, key = unique("odd"), unique("x:odd")
    system.apply(Rule(rule_id, 1, condition="zebracorn OR 比特币"))
    broken = event(f"{key}-utf8", "zebracorn PLACEHOLDER").replace(b"PLACEHOLDER", b"\xff\xfe")
    system.produce(broken, event(f"{key}-emoji", "🦓🦄🦓"), event(f"{key}-zh", "我今天买了比特币"))
    items = system.feed([rule_id], count=2, timeout_s=30)
    assert sorted(i["alert"]["content_key"] for i in items) == [f"{key}-utf8", f"{key}-zh"]
    flags = {}
    for suffix in ("utf8", "emoji", "zh"):
        (row,) = wait_rows(cassandra, FINDINGS, (f"{key}-{suffix}",), 1)
        flags[suffix] = json.loads(row.findings_json)["flags"]
    assert flags == {"utf8": ["invalid_utf8"], "emoji": ["emoji_only"],
                     "zh": ["unsegmented_script", "unsupported_script"]}
