"""The running system for integration tests: one analyze job and one fan-out per test session.

Built on the `stack_settings` fixture (real Kafka and Cassandra on free ports). Tests stay apart
by their own rule ids and content keys; helpers here publish events, apply rules and read the
feed, Kafka topics and Cassandra with bounded waits.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from connectors.kafka import consumer, producer
from schemas.rule import Rule
from services.fanout import FanoutHandle, run_in_thread
from services.feed_client import feed_url, follow
from trackius import jobctl, rules_client
from trackius.settings import Settings, free_ports


@dataclass
class System:
    settings: Settings
    jobs: dict[str, subprocess.Popen]
    fanout: FanoutHandle
    restarts: list[str] = field(default_factory=list)

    def restart_jobs(self, kill: bool) -> None:
        """Stop both jobs (SIGKILL simulates a crash) and start them again from their last checkpoints."""
        jobctl.stop_all(self.jobs, kill=kill)
        self.jobs = jobctl.start_all(self.settings, resume=True)

    def apply(self, *rules: Rule) -> None:
        rules_client.publish(self.settings, list(rules), wait=True, timeout_s=60)

    def produce(self, *values: bytes) -> None:
        client = producer(self.settings)
        for value in values:
            client.send(self.settings.topics.content_events, value=value)
        client.flush()
        client.close()

    def feed(self, rule_ids: list[str], count: int, timeout_s: float = 30.0, since: int = -1) -> list[dict]:
        """Up to `count` feed items for these rules, or fewer if the timeout passes first."""
        return asyncio.run(_collect(feed_url(self.settings), rule_ids, count, timeout_s, since))

    def topic(self, topic: str, predicate, count: int, timeout_s: float = 30.0) -> list[dict]:
        """JSON records of a topic that satisfy `predicate`, waiting until `count` are seen."""
        reader = consumer(self.settings, topic, consumer_timeout_ms=500)
        found: list[dict] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(found) < count and time.monotonic() < deadline:
                for message in reader:
                    record = json.loads(message.value)
                    if predicate(record):
                        found.append(record)
        finally:
            reader.close()
        return found


async def _collect(url: str, rule_ids: list[str], count: int, timeout_s: float, since: int | None) -> list[dict]:
    items: list[dict] = []

    async def gather() -> None:
        async for item in follow(url, rules=rule_ids, since=since):
            items.append(item)
            if len(items) >= count:
                return

    try:
        await asyncio.wait_for(gather(), timeout_s)
    except TimeoutError:
        pass
    return items


def event(key: str, text: str, **extra: object) -> bytes:
    now = time.time_ns() // 1_000_000
    record = {"content_key": key, "platform": key.split(":")[0], "source": "tests", "author": "@t",
              "published_at": now, "collected_at": now, "text": text, **extra}
    return json.dumps(record).encode()


def wait_rows(session, cql: str, params: tuple, count: int, timeout_s: float = 60.0) -> list:
    """The rows of a query once there are `count` of them (or whatever is there at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = list(session.execute(cql, params))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def cassandra(stack_settings: Settings) -> Iterator:
    """One Cassandra session for the tests' own reads, shut down at the end (no stray threads)."""
    from connectors.admin import cassandra_session

    session = cassandra_session(stack_settings)
    yield session
    session.cluster.shutdown()


@pytest.fixture(scope="session")
def system(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    rest_port, store_rest_port = free_ports(2)
    settings = stack_settings.replace(flink_rest_port=rest_port, store_rest_port=store_rest_port,
                                      fanout_port=0, checkpoint_interval_ms=1000)
    fanout = run_in_thread(settings)
    settings = settings.replace(fanout_port=fanout.port)
    running = System(settings, {}, fanout)
    try:
        running.jobs = jobctl.start_all(settings, resume=False)
        yield running
    finally:
        jobctl.stop_all(running.jobs)
        fanout.stop()
