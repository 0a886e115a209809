"""The analyze topology on a local MiniCluster, fed from in-memory collections (no Kafka)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from jobs.analyze import topology
from jobs.environment import execution_environment
from schemas.codec import encode
from schemas.flink_types import json_type, record_type
from schemas.rule import Rule
from tests.media_server import serve
from trackius.settings import SHARED_DATA, Settings

JFK = SHARED_DATA / "audio" / "speech" / "jfk.flac"

pytestmark = pytest.mark.job


class DelayFirst:
    """Holds the first event back so the rules (a separate bounded source) are broadcast first,
    after AnalyzeText and AnalyzeMedia have opened (they load their models; from a cold start
    both together took over 10 s on 2 cores); holds the end of the
    input back after the last event, so that media parts, analysed on the operator's own
    threads, are collected before the bounded job finishes."""

    def __init__(self, seconds: float, last: int, tail_seconds: float = 6.0) -> None:
        self.seconds = seconds
        self.last = last
        self.tail_seconds = tail_seconds
        self.seen = 0

    def __call__(self, value: str) -> bytes:
        if self.seen == 0:
            time.sleep(self.seconds)
        self.seen += 1
        if self.seen == self.last:
            time.sleep(self.tail_seconds)
        return as_bytes(value)


def as_bytes(value: str) -> bytes:
    """In-memory collections carry str; latin-1 maps each byte to one char and back."""
    return value.encode("latin-1")


def event(key: str, text: str, **extra: object) -> bytes:
    record = {"content_key": key, "platform": key.split(":")[0], "source": "s", "author": "a",
              "published_at": 1, "collected_at": 2, "text": text, **extra}
    return json.dumps(record).encode()


def run(events: list[bytes], rules: list[Rule]) -> dict[str, list[dict]]:
    # Bluesky's deadline is shorter than the fetch timeout: a part that hangs is missing at it
    settings = Settings().replace(batch_size=1, parallelism=1, flink_rest_port=0, refs_store="none",
                                  fusion_deadlines="bluesky=3000", media_fetch_timeout_ms=8000)
    env = execution_environment(settings)
    event_stream = env.from_collection([e.decode("latin-1") for e in events], json_type()).map(
        DelayFirst(20.0, len(events), tail_seconds=25.0), record_type())
    rule_stream = env.from_collection([encode(r) for r in rules], json_type()).map(as_bytes, record_type())
    out = topology(event_stream, rule_stream, settings)
    tagged = (
        out.alerts.map(lambda a: "alert\t" + a, json_type())
        .union(out.dead_letters.map(lambda d: "dead\t" + d, json_type()))
        .union(out.findings.map(lambda f: "findings\t" + f, json_type()))
    )
    results: dict[str, list] = {"alert": [], "dead": [], "findings": []}
    with tagged.execute_and_collect() as collected:
        for line in collected:
            kind, _, body = line.partition("\t")
            results[kind].append(json.loads(body))
    return results


def _sign(path: Path) -> Path:
    """A picture of a sign that says what the outage rule looks for."""
    image = Image.new("RGB", (640, 220), "white")
    ImageDraw.Draw(image).text((20, 70), "BINANCE IS DOWN", fill="black", font=ImageFont.load_default(size=48))
    image.save(path)
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list]]:
    with serve({}, hang=["/slow.jpg"]) as server:
        yield _results(tmp_path_factory, server)


def _results(tmp_path_factory: pytest.TempPathFactory, server: str) -> dict[str, list]:
    sign = _sign(tmp_path_factory.mktemp("media") / "sign.png")
    parts = [{"part_id": "photo", "kind": "image", "uri": (SHARED_DATA / "images/ultralytics/bus.jpg").as_uri()},
             {"part_id": "sign", "kind": "image", "uri": sign.as_uri()},
             {"part_id": "lost", "kind": "image", "uri": "file:///nonexistent/picture.jpg"}]
    rules = [
        Rule("doge", 1, condition="$doge AND sentiment > 0.3", severity="high"),
        Rule("outage", 1, condition='binance AND ("withdrawals paused" OR down)'),
        Rule("gone", 1, condition="doge"),
        Rule("gone", 2, deleted=True),
        Rule("speech", 1, condition="fellow AND country"),
        Rule("bus-commute", 1, condition='commute AND object("bus") >= 1 AND NOT image_match("no-such-ref")'),
        Rule("slowpoke", 1, condition='slowpoke AND NOT image_match("no-such-ref")'),
    ]
    events = [
        event("x:1", "I love $DOGE, what a great day"),
        event("x:2", "Binance down? withdrawals paused for me"),
        event("x:3", "$doge is terrible and I hate it"),
        event("x:1", "I love $DOGE, what a great day"),  # the same content again
        b'{"content_key": "x:4", "platform": ',
        event("myspace:5", "unknown platform"),
        b"\xff\xfe not utf-8",
        event("x:6", "just a photo of my commute", parts=parts),
        event("bluesky:9", "slowpoke special", parts=[{"part_id": "slow", "kind": "image", "uri": f"{server}/slow.jpg"}]),
        event("x:8", "listen to this", parts=[{"part_id": "talk", "kind": "audio", "uri": JFK.as_uri()}]),
        event("x:7", "the last event, held back while the media of x:6 are analysed"),
    ]
    return run(events, rules)


def test_matching_events_alert_once_per_rule_and_content(results: dict) -> None:
    """Each (rule, content) fires one alert, with a deterministic id and its evidence."""
    fired = sorted((a["rule_id"], a["content_key"]) for a in results["alert"])
    assert fired == [("bus-commute", "x:6"), ("doge", "x:1"), ("outage", "x:2"), ("outage", "x:6"),
                     ("slowpoke", "bluesky:9"), ("speech", "x:8")]
    doge = next(a for a in results["alert"] if a["rule_id"] == "doge")
    assert [hit["term"] for hit in doge["evidence"]["hits"]] == ["$doge"]
    assert doge["evidence"]["sentiment"] > 0.3


def test_deleted_rule_never_fires(results: dict) -> None:
    """A rule whose latest version is a deletion is not evaluated."""
    assert all(a["rule_id"] != "gone" for a in results["alert"])


def test_bad_records_become_dead_letters_with_reasons(results: dict) -> None:
    """Malformed JSON, an unknown platform and invalid UTF-8 are dead-lettered, precisely."""
    reasons = sorted(d["reason"] for d in results["dead"])
    assert len(reasons) == 3
    assert any(r.startswith("malformed JSON") for r in reasons)
    assert any("platform" in r and "myspace" in r for r in reasons)
    assert any(r.startswith("invalid UTF-8 at byte 0") for r in reasons)


def test_every_decoded_event_has_findings(results: dict) -> None:
    """Each decoded event yields findings with sentiment, hits and the event's collected_at."""
    by_key = {}
    for found in results["findings"]:
        by_key.setdefault(found["content_key"], []).append(found)
    by_key = {key: [f for f in found if "kind" not in f and "complete" not in f] for key, found in by_key.items()}
    assert sorted(by_key) == ["bluesky:9", "x:1", "x:2", "x:3", "x:6", "x:7", "x:8"] and len(by_key["x:1"]) == 2
    assert by_key["x:3"][0]["sentiment"]["compound"] < 0
    assert {hit["term"] for hit in by_key["x:2"][0]["hits"]} == {"binance", "withdrawals paused", "down"}
    assert all(found["collected_at"] == 2 and found.get("analysed_at", found.get("fused_at")) > 0
               for found in results["findings"])


def test_media_parts_get_findings_good_or_bad(results: dict) -> None:
    """Each image part gets final findings: objects for the photo, the reason for the lost one."""
    media = {f["part_id"]: f for f in results["findings"]
             if f.get("kind") == "image" and f["status"] != "partial" and f["content_key"] == "x:6"}
    assert set(media) == {"photo", "sign", "lost"}
    assert {"bus", "person"} <= {d["label"] for d in media["photo"]["objects"]}
    assert media["lost"]["status"] == "error" and media["lost"]["failure"]["stage"] == "fetch"


def test_text_in_an_image_fires_text_rules(results: dict) -> None:
    """The sign's text is read (a rule looks for terms), analysed as text of that part, and fires."""
    sign_text = [f for f in results["findings"] if f.get("part_id") == "sign.text"]
    assert sign_text and {h["term"] for h in sign_text[0]["hits"]} >= {"binance", "down"}
    assert ("outage", "x:6") in {(a["rule_id"], a["content_key"]) for a in results["alert"]}


def test_speech_in_an_audio_part_fires_text_rules(results: dict) -> None:
    """The audio part gets findings (speech found), its transcript is analysed as the part's text
    and fires the rule on what was said."""
    (talk,) = [f for f in results["findings"] if f.get("part_id") == "talk" and f["status"] == "ok"]
    assert talk["kind"] == "audio" and talk["audio"]["speech_share"] > 0.5
    assert "country" in talk["audio"]["transcript"]
    heard = [f for f in results["findings"] if f.get("part_id", "").startswith("talk.text")]
    assert "talk.text" in {f["part_id"] for f in heard}  # later pieces are named talk.text@<s>s
    assert {"fellow", "country"} <= {h["term"] for f in heard for h in f["hits"]}


def test_a_multimodal_rule_fires_once_the_image_decides_it(results: dict) -> None:
    """`commute AND object("bus") >= 1 AND NOT image_match(...)` needs the post's text and every
    image closed; its evidence names the objects counted."""
    (alert,) = [a for a in results["alert"] if a["rule_id"] == "bus-commute"]
    assert alert["evidence"]["objects"]["bus"] >= 1 and alert["missing"] == []
    assert [hit["term"] for hit in alert["evidence"]["hits"]] == ["commute"]


def test_fused_analysis_joins_every_part_of_an_item(results: dict) -> None:
    """One FusedAnalysis per item with media: complete, the failed part named, the rules that hold."""
    fused = {f["content_key"]: f for f in results["findings"] if "complete" in f}
    assert set(fused) == {"x:6", "x:8", "bluesky:9"}
    photo = fused["x:6"]
    assert photo["complete"] and not photo["timed_out"] and photo["failed"] == ["lost"]
    assert {p["part_id"]: p["status"] for p in photo["parts"]} == {"text": "ok", "photo": "ok", "sign": "ok",
                                                                    "lost": "error"}
    assert {"outage", "bus-commute"} <= set(photo["fired"])
    assert {t["part_id"] for t in photo["texts"]} >= {"text", "sign.text"}
    assert "speech" in fused["x:8"]["fired"]


def test_a_part_that_never_arrives_is_flagged_at_the_deadline(results: dict) -> None:
    """The image hangs past the fusion deadline: the rule is decided without it (flagged missing),
    the FusedAnalysis goes out timed out, and again, complete, once the fetch gives up."""
    (alert,) = [a for a in results["alert"] if a["rule_id"] == "slowpoke"]
    assert alert["missing"] == ["slow"]
    fused = [f for f in results["findings"] if f["content_key"] == "bluesky:9" and "complete" in f]
    assert (fused[0]["complete"], fused[0]["timed_out"], fused[0]["missing"]) == (False, True, ["slow"])
    assert (fused[-1]["complete"], fused[-1]["timed_out"], fused[-1]["missing"]) == (True, True, [])
    assert fused[-1]["failed"] == ["slow"] and "slowpoke" in fused[-1]["fired"]


def test_store_topology_maps_records_to_upserts() -> None:
    """Alert and findings JSON become upserts keyed by partition key; a bad record a dead letter."""
    from jobs import store
    from tests.job.samples import ALERT_JSON, FINDINGS_JSON

    settings = Settings().replace(flink_rest_port=0)
    env = execution_environment(settings)
    out = store.topology(env.from_collection([ALERT_JSON, '{"alert_id": "x"}'], json_type()).map(as_bytes, record_type()),
                         env.from_collection([FINDINGS_JSON], json_type()).map(as_bytes, record_type()),
                         settings)
    rows = out.rows.map(lambda row: f"{row.statement}\t{row.values[0]}\t{row.values[1]}", json_type())
    with rows.union(out.dead_letters).execute_and_collect() as collected:
        stored = sorted(collected)
    assert stored[:2] == ["alert\tdoge\t2", "findings\tx:1\ttext"]
    assert json.loads(stored[2])["reason"] == "revision: missing required field"
