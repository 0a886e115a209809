"""The WebSocket fan-out against real Kafka: filtering, dedup, health, resume, slow clients.

Alerts go to `settings.topics.alerts`; records other suites might choke on (junk bytes, a
25 MB flood) go to a private one-partition topic. Every test uses its own rule and alert ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.fanout import FanoutHandle, run_in_thread
from services.feed_client import follow, with_query
from trackius.settings import REPO_ROOT, Settings, Topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def settings(stack_settings: Settings) -> Settings:
    return stack_settings.replace(fanout_port=0, fanout_host="127.0.0.1")


@pytest.fixture(scope="module")
def private_settings(settings: Settings) -> Settings:
    """The same stack with a one-partition alerts topic of this module's own."""
    topic = f"alerts.fanout-test-{uuid.uuid4().hex[:8]}.v1"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    config = {"max.message.bytes": str(settings.max_message_bytes)}
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs=config)])
    admin.close()
    return settings.replace(topics=Topics(alerts=topic))


@pytest.fixture(scope="module")
def producer(settings: Settings) -> Iterator[KafkaProducer]:
    kafka = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0,
                          max_request_size=settings.max_message_bytes)
    yield kafka
    kafka.close()


@pytest.fixture(scope="module")
def fanout(settings: Settings) -> Iterator[FanoutHandle]:
    with run_in_thread(settings) as handle:
        yield handle


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def alert(rule_id: str, n: int | str, revision: int = 1, **extra: object) -> bytes:
    body = {"alert_id": f"{rule_id}:{n}", "revision": revision, "rule_id": rule_id, **extra}
    return json.dumps(body).encode()


def publish(producer: KafkaProducer, topic: str, values: list[bytes]) -> list[int]:
    """Send in order and return the offsets (= positions)."""
    futures = [producer.send(topic, v) for v in values]
    producer.flush()
    return [f.get(timeout=30).offset for f in futures]


def feed(handle: FanoutHandle, rules: list[str] | None = None, since: int | None = None) -> str:
    return with_query(f"ws://127.0.0.1:{handle.port}/feed", rules, since)


def health(port: int, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {"body": exc.read().decode()}


def position(handle: FanoutHandle) -> int:
    return int(health(handle.port)[1]["position"])


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


async def take(url: str, count: int, reconnect: bool = False) -> list[dict[str, Any]]:
    """The first `count` items of the feed (bounded wait)."""
    items: list[dict[str, Any]] = []
    async with aclosing(follow(url, reconnect=reconnect)) as stream:
        async for item in stream:
            items.append(item)
            if len(items) == count:
                break
    return items


def bounded(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ids(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(i["alert"]["alert_id"], i["alert"]["revision"]) for i in items]


def test_client_gets_only_its_rules_in_position_order(fanout, producer, settings) -> None:
    """A subscription to one rule sees that rule's alerts, live, at their Kafka offsets."""
    mine, other = unique("mine"), unique("other")
    since = position(fanout)
    values = [alert(mine if n % 2 == 0 else other, n) for n in range(20)]

    async def scenario() -> tuple[list[dict[str, Any]], list[int]]:
        reader = asyncio.create_task(take(feed(fanout, [mine], since), 10))
        offsets = await asyncio.to_thread(publish, producer, settings.topics.alerts, values)
        return await reader, offsets

    items, offsets = bounded(scenario())
    assert ids(items) == [(f"{mine}:{n}", 1) for n in range(0, 20, 2)]
    assert [i["position"] for i in items] == offsets[::2]


def test_duplicates_are_dropped_and_never_get_a_position(fanout, producer, settings) -> None:
    """A re-emitted (alert_id, revision) is dropped; a new revision is a new alert."""
    rule = unique("dedup")
    values = [alert(rule, "a"), alert(rule, "a"), alert(rule, "a", 2), alert(rule, "b"),
              alert(rule, "a"), alert(rule, "a", 2), alert(rule, "end")]
    since = position(fanout)
    offsets = publish(producer, settings.topics.alerts, values)
    items = bounded(take(feed(fanout, [rule], since), 4))
    assert ids(items) == [(f"{rule}:a", 1), (f"{rule}:a", 2), (f"{rule}:b", 1), (f"{rule}:end", 1)]
    assert [i["position"] for i in items] == [offsets[0], offsets[2], offsets[3], offsets[6]]


def test_healthz_reports_clients_and_position(fanout, producer, settings) -> None:
    """/healthz answers 200 JSON with the client count and the last offset read."""
    rule = unique("health")
    [offset] = publish(producer, settings.topics.alerts, [alert(rule, 0)])
    wait_for(lambda: position(fanout) >= offset)

    async def with_client() -> tuple[int, dict[str, Any]]:
        async with connect(feed(fanout, [rule])):
            await asyncio.sleep(0.2)
            return await asyncio.to_thread(health, fanout.port)

    status, body = bounded(with_client())
    assert status == 200 and body["status"] == "ok"
    assert body["clients"] >= 1 and body["position"] >= offset
    assert health(fanout.port, "/feed?since=abc")[0] == 400


def test_resume_with_since_misses_nothing_and_repeats_nothing(fanout, producer, settings) -> None:
    """Drop mid-stream, miss alerts, resume while more arrive: each alert once, in order."""
    rule, topic = unique("resume"), settings.topics.alerts
    # Every fifth alert is re-emitted right away, as Flink does after a restart.
    values = [v for n in range(90) for v in [alert(rule, n)] * (2 if n % 5 == 0 else 1)]
    since = position(fanout)
    publish(producer, topic, values[:40])
    first = bounded(take(feed(fanout, [rule], since), 12))
    publish(producer, topic, values[40:70])  # missed while disconnected
    late = threading.Thread(target=lambda: [publish(producer, topic, [v]) for v in values[70:]])
    late.start()  # and more arrive while the replay is being sent
    second = bounded(take(feed(fanout, [rule], first[-1]["position"]), 90 - 12))
    late.join()
    assert ids(first + second) == [(f"{rule}:{n}", 1) for n in range(90)]
    positions = [i["position"] for i in first + second]
    assert positions == sorted(set(positions))


def test_resume_older_than_buffer_is_read_back_from_kafka(producer, settings) -> None:
    """A since the buffer no longer covers is replayed from Kafka, still deduplicated."""
    rule, topic = unique("old"), settings.topics.alerts
    with run_in_thread(settings.replace(fanout_buffer=4)) as small:
        since = position(small)
        values = [v for n in range(20) for v in [alert(rule, n)] * (2 if n % 3 == 0 else 1)]
        offsets = publish(producer, topic, values)
        wait_for(lambda: position(small) >= offsets[-1])
        items = bounded(take(feed(small, [rule], since), 20))
    assert ids(items) == [(f"{rule}:{n}", 1) for n in range(20)]


def test_client_follows_across_a_fanout_restart(producer, settings) -> None:
    """After SIGTERM-style shutdown (1001) and restart, follow() resumes from the new buffer."""
    rule, topic = unique("restart"), settings.topics.alerts
    first = run_in_thread(settings)
    port, since = first.port, position(first)

    async def scenario() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        reader = asyncio.create_task(_collect(feed(first, [rule], since), 20, items))
        await asyncio.to_thread(publish, producer, topic, [alert(rule, n) for n in range(10)])
        while len(items) < 10:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(publish, producer, topic, [alert(rule, n) for n in range(10, 20)])
        second = await asyncio.to_thread(run_in_thread, settings.replace(fanout_port=port))
        try:
            await reader
        finally:
            await asyncio.to_thread(second.stop)
        return items

    items = bounded(scenario(), 90)
    assert ids(items) == [(f"{rule}:{n}", 1) for n in range(20)]


async def _collect(url: str, count: int, into: list[dict[str, Any]]) -> None:
    async with aclosing(follow(url, reconnect=True)) as stream:
        async for item in stream:
            into.append(item)
            if len(into) == count:
                return


def test_slow_client_is_cut_off_with_1013_and_can_resume(producer, private_settings) -> None:
    """A client that stops reading is closed with 1013 and resumes with since, losing nothing."""
    rule, topic = unique("slow"), private_settings.topics.alerts
    count, pad = 400, "x" * 64_000  # ~25 MB: more than loopback socket buffers hold
    with run_in_thread(private_settings, client_queue=4) as server:
        since = position(server)

        async def scenario() -> tuple[list[dict[str, Any]], int | None, list[dict[str, Any]]]:
            async with connect(feed(server, [rule], since), max_size=None, max_queue=4) as ws:
                await asyncio.to_thread(publish, producer, topic,
                                        [alert(rule, n, pad=pad) for n in range(count)])
                await asyncio.to_thread(wait_for, lambda: health(server.port)[1]["clients"] == 0)
                got, code = await _drain(ws)
            rest = await take(feed(server, [rule], got[-1]["position"]), count - len(got))
            return got, code, rest

        got, code, rest = bounded(scenario(), 120)
    assert code == 1013 and 0 < len(got) < count
    assert [i["alert"]["alert_id"] for i in got + rest] == [f"{rule}:{n}" for n in range(count)]


async def _drain(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    got = []
    try:
        async for message in ws:
            got.append(json.loads(message))
    except ConnectionClosed as exc:
        return got, exc.rcvd.code if exc.rcvd else None
    return got, ws.close_code


def test_bad_records_are_skipped(producer, private_settings) -> None:
    """Records that are not alert JSON are logged and skipped; the feed goes on."""
    rule = unique("bad")
    junk = [b"not json", b"[1]", b'{"alert_id": 1}', b"\xff", alert(rule, "ok")]
    with run_in_thread(private_settings) as server:
        offsets = publish(producer, private_settings.topics.alerts, junk)
        items = bounded(take(feed(server, None, offsets[0] - 1), 1))
        assert health(server.port)[0] == 200
    assert ids(items) == [(f"{rule}:ok", 1)] and items[0]["position"] == offsets[-1]


def test_sigterm_closes_clients_with_1001_and_exits_0(private_settings) -> None:
    """`python -m services.fanout` stops on SIGTERM: clients get 1001, the process exits 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TRACKIUS_KAFKA_BOOTSTRAP": private_settings.kafka_bootstrap,
           "TRACKIUS_TOPIC_ALERTS": private_settings.topics.alerts,
           "TRACKIUS_FANOUT_HOST": "127.0.0.1", "TRACKIUS_FANOUT_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "services.fanout"], cwd=REPO_ROOT, env=env)
    try:
        wait_for(lambda: _answers(port), timeout=60)

        async def scenario() -> int | None:
            async with connect(f"ws://127.0.0.1:{port}/feed") as ws:
                await asyncio.sleep(0.2)
                proc.send_signal(signal.SIGTERM)
                return (await _drain(ws))[1]

        assert bounded(scenario(), 30) == 1001
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answers(port: int) -> bool:
    try:
        return health(port)[0] == 200
    except OSError:
        return False
