"""Visual analysis through the running job: media served by a local HTTP server, good and bad
parts side by side, text read in images firing text rules, and a tracked reference image added
and removed at run time (Cassandra + refs.v1) without a restart."""

from __future__ import annotations

import io
import json
import time
import typing
from collections.abc import Iterator

import pytest
from PIL import Image, ImageDraw, ImageFont

from schemas.rule import Rule
from tests.integration.system import System, event, unique
from tests.media_server import serve
from trackius.settings import SHARED_DATA

pytestmark = pytest.mark.integration

FINDINGS = "SELECT part_id, modality, findings_json FROM findings_by_content WHERE content_key=%s"
IMAGES = SHARED_DATA / "images"


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _sign(text: str) -> bytes:
    image = Image.new("RGB", (700, 220), "white")
    ImageDraw.Draw(image).text((20, 70), text, fill="black", font=ImageFont.load_default(size=48))
    return _jpeg(image, 95)


@pytest.fixture(scope="module")
def media_server() -> Iterator[str]:
    bus = Image.open(IMAGES / "ultralytics" / "bus.jpg")
    routes = {
        "/bus.jpg": ("image/jpeg", _jpeg(bus)),
        "/sign.jpg": ("image/jpeg", _sign("EXCHANGE HACKED TODAY")),
        "/page.html.jpg": ("text/html", b"<!doctype html><html><body>moved</body></html>"),
        "/zidane-copy.jpg": ("image/jpeg", _jpeg(Image.open(IMAGES / "ultralytics" / "zidane.jpg")
                                                 .transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((60, 40, 1220, 700)), 40)),
    }
    with serve(routes, hang=["/slow.jpg"]) as url:  # /slow.jpg: a server that never answers
        yield url


def _parts(server: str, **paths: str) -> list[dict]:
    return [{"part_id": part_id, "kind": "image", "uri": f"{server}{path}"} for part_id, path in paths.items()]


def _media_rows(cassandra, key: str, parts: set[str], timeout_s: float = 90) -> dict[str, dict]:
    """The stored findings of `key` by part_id, once every part in `parts` has its final ones."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = {row.part_id: json.loads(row.findings_json) for row in cassandra.execute(FINDINGS, (key,))}
        final = {part for part, found in rows.items() if found.get("status", "ok") != "partial"}
        if parts <= final or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_good_and_bad_images_never_hold_up_the_post(system: System, cassandra, media_server: str) -> None:
    """A post with a photo, a sign, an HTML page served as JPEG, a 404 and a server that never
    answers: the text alert is out before the slow fetch gives up, every part gets findings
    (the failures with their reasons), and the sign's text fires a text rule."""
    text_rule, sign_rule, key = unique("commute"), unique("hacked"), unique("x:media")
    system.apply(Rule(text_rule, 1, condition="commute"), Rule(sign_rule, 1, condition='"exchange hacked"'))
    parts = _parts(media_server, photo="/bus.jpg", sign="/sign.jpg", page="/page.html.jpg",
                   gone="/gone.jpg", slow="/slow.jpg")
    started = time.monotonic()
    system.produce(event(key, "my commute this morning", parts=parts))
    (text_alert,) = system.feed([text_rule], count=1, timeout_s=30)
    assert time.monotonic() - started < system.settings.media_fetch_timeout_ms / 1000
    assert text_alert["alert"]["content_key"] == key
    (sign_alert,) = system.feed([sign_rule], count=1, timeout_s=60)
    assert sign_alert["alert"]["content_key"] == key

    found = _media_rows(cassandra, key, {"text", "sign.text", "photo", "sign", "page", "gone", "slow"})
    assert found["photo"]["status"] == "ok" and {"bus", "person"} <= {d["label"] for d in found["photo"]["objects"]}
    assert len(found["photo"]["faces"]) == 2
    failures = {part: (found[part]["failure"]["stage"], found[part]["failure"]["code"])
                for part in ("page", "gone", "slow")}
    assert failures == {"page": ("fetch", "not_media"), "gone": ("fetch", "http_status"),
                        "slow": ("fetch", "timeout")}
    assert {hit["term"] for hit in found["sign.text"]["hits"]} >= {"exchange hacked"}


def test_reference_added_and_removed_at_run_time(system: System, cassandra, media_server: str,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`trackius refs add` stores the reference in Cassandra and announces it on refs.v1; the
    running job indexes it and finds a mirrored, cropped, re-encoded copy; after `trackius refs
    remove` it no longer does."""
    from trackius.cli import main

    for name, value in system.settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert main(["refs", "add", "--kind", "image", str(IMAGES / "ultralytics" / "zidane.jpg")]) == 0
    ref_id = json.loads(capsys.readouterr().out)["ref_id"]
    assert main(["refs", "list", "--kind", "image"]) == 0
    assert ref_id in {json.loads(line)["ref_id"] for line in capsys.readouterr().out.splitlines()}

    matched = _matches_until(system, cassandra, media_server, lambda refs: ref_id in refs)
    assert matched["method"] in ("embedding", "phash", "phash-mirror") and matched["name"] == "zidane.jpg"

    assert main(["refs", "remove", "--kind", "image", ref_id]) == 0
    _matches_until(system, cassandra, media_server, lambda refs: ref_id not in refs)
    assert main(["refs", "add", "--kind", "image", str(IMAGES / "nothing.jpg")]) == 1
    assert "nothing.jpg" in capsys.readouterr().err


def _matches_until(system: System, cassandra, server: str, done: typing.Callable[[set[str]], bool]) -> dict:
    """Post the copy until the job's findings satisfy `done` (a notice takes a moment to apply)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        key = unique("x:copy")
        system.produce(event(key, "seen this?", parts=_parts(server, copy="/zidane-copy.jpg")))
        found = _media_rows(cassandra, key, {"copy"})["copy"]
        refs = {match["ref_id"]: match for match in found["matches"]}
        if done(set(refs)):
            return next(iter(refs.values()), {})
        time.sleep(1)
    raise AssertionError("the job's findings never reflected the reference change")
