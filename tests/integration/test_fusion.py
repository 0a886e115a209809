"""Fusion and alert shaping through the running job on the real stack: a rule joining what was
seen in an image with the post's sentiment, reposts as one story, windowed rules whose windows
close while the rules stream stays idle, and the fused analysis stored in Cassandra."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from schemas.rule import Rule
from schemas.window import WindowSpec
from tests.integration.system import System, event, unique, wait_rows
from tests.media_server import serve

pytestmark = pytest.mark.integration

NEGATIVE = "This brand is awful, I hate it, the worst service ever"
POSITIVE = "This brand is wonderful, I love it, the best service ever"
FUSED = "SELECT findings_json FROM findings_by_content WHERE content_key=%s AND part_id='fused'"


def _logo(seed: int) -> Image.Image:
    """A made-up logo, different for every run (so no earlier reference matches it)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (480, 480), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.randrange(480), rng.randrange(480), rng.randrange(30, 140)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    draw.rectangle((60, 200, 420, 280), fill=(20, 20, 20))
    return image


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def logo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The logo as a reference file, and a server with a resized, re-encoded copy of it."""
    image = _logo(random.randrange(1 << 30))
    path = tmp_path_factory.mktemp("logo") / f"{unique('logo')}.png"
    image.save(path)
    copy = _jpeg(image.resize((320, 320)), 60)
    with serve({"/logo.jpg": ("image/jpeg", copy)}) as url:
        yield path, f"{url}/logo.jpg"


def test_logo_seen_and_negative_sentiment(system: System, cassandra, logo: tuple[Path, str],
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`image_match(logo) AND sentiment < -0.3` fires on a negative post showing a copy of the
    logo, with both in its evidence; not on a positive post with the logo, nor on a negative
    post without it. The FusedAnalysis of the item is stored beside its parts."""
    from trackius.cli import main

    for name, value in system.settings.to_env().items():
        monkeypatch.setenv(name, value)
    path, copy_url = logo
    assert main(["refs", "add", "--kind", "image", str(path)]) == 0
    ref_id = json.loads(capsys.readouterr().out)["ref_id"]
    rule_id = unique("logo-hate")
    system.apply(Rule(rule_id, 1, condition=f'image_match("{ref_id}") AND sentiment < -0.3'))

    image = [{"part_id": "pic", "kind": "image", "uri": copy_url}]
    controls = [unique("x:logo-happy"), unique("x:plain-hate")]
    system.produce(event(controls[0], POSITIVE, parts=image), event(controls[1], NEGATIVE))
    deadline, alert = time.monotonic() + 90, None
    while alert is None and time.monotonic() < deadline:  # the reference notice takes a moment
        key = unique("x:logo-hate")
        system.produce(event(key, NEGATIVE, parts=image))
        items = system.feed([rule_id], count=1, timeout_s=10)
        alert = next((i["alert"] for i in items if i["alert"]["content_key"] == key), None)
    assert alert is not None, "the multimodal rule never fired"
    assert alert["evidence"]["images"] == [ref_id] and alert["evidence"]["sentiment"] < -0.3
    assert alert["missing"] == []
    fired = {i["alert"]["content_key"] for i in system.feed([rule_id], count=100, timeout_s=3, since=0)}
    assert not fired & set(controls)

    (row,) = wait_rows(cassandra, FUSED, (alert["content_key"],), 1)
    fused = json.loads(row.findings_json)
    assert fused["complete"] and rule_id in fused["fired"]
    assert {part["part_id"]: part["status"] for part in fused["parts"]} == {"text": "ok", "pic": "ok"}


def test_reposts_are_one_story_with_revisions(system: System, cassandra) -> None:
    """The same text posted by three accounts: one alert, revised as the story grows."""
    word = unique("zorblat").replace("-", "")
    rule_id = unique("story")
    system.apply(Rule(rule_id, 1, condition=word))
    text = f"Breaking news: {word} exchange halts all withdrawals after a major security incident tonight"
    keys = [unique("x:story") for _ in range(3)]
    system.produce(event(keys[0], text))
    system.produce(event(keys[1], f"RT @newsbot: {text} https://t.co/abc"))
    system.produce(event(keys[2], text.upper() + " !!!"))
    items = system.feed([rule_id], count=3, timeout_s=30)
    alerts = sorted((i["alert"] for i in items), key=lambda a: a["revision"])
    assert [a["revision"] for a in alerts] == [1, 2, 3]
    assert len({a["alert_id"] for a in alerts}) == 1 and len({a["story_id"] for a in alerts}) == 1
    assert [a["story_count"] for a in alerts] == [1, 2, 3]


def test_windows_close_while_the_rules_stream_is_idle(system: System, cassandra) -> None:
    """A threshold fires on arrival; a sequence (A then B from one source) fires once event time
    passes B, which only works because watermarks are assigned after the rules broadcast."""
    word = unique("quibble").replace("-", "")
    burst, sequence = unique("burst"), unique("pump-dump")
    system.apply(Rule(burst, 1, condition=word, window=WindowSpec(kind="threshold", size="1m", threshold=2)),
                 Rule(sequence, 1, condition=f"{word} AND pump",
                      window=WindowSpec(kind="sequence", size="10m", then=f"{word} AND dump")))
    time.sleep(2)  # nothing about the rules changes from here on
    source = unique("chan")
    now = (time.time_ns() // 60_000_000_000 + 1) * 60_000 + 1000  # just after the next minute starts

    def post(offset_s: int, text: str) -> bytes:
        record = json.loads(event(unique("x:win"), f"{word} {text}"))
        record.update(source=source, published_at=now + offset_s * 1000, collected_at=now + offset_s * 1000)
        return json.dumps(record).encode()

    system.produce(post(0, "pump it"), post(5, "still going"), post(10, "more"))
    (threshold,) = [i["alert"] for i in system.feed([burst], count=1, timeout_s=30)]
    assert threshold["window"]["kind"] == "threshold" and threshold["window"]["count"] == 3
    system.produce(post(60, "dump it all"))
    for offset in (90, 120, 150):  # later matches move event time on; the rules stay as they were
        system.produce(post(offset, "anything"))
        time.sleep(0.5)
    items = system.feed([sequence], count=1, timeout_s=30)
    assert items, "the sequence window never closed"
    window = items[0]["alert"]["window"]
    assert window["kind"] == "sequence" and window["group"] == source
