"""The job killed mid-stream and restarted from its last checkpoint loses no alert."""

from __future__ import annotations

import threading
import time

import pytest

from schemas.rule import Rule
from tests.integration.system import System, event, unique
from trackius import jobctl

pytestmark = pytest.mark.integration

EVENTS = 300


def test_kill_and_restore_loses_nothing_and_duplicates_collapse(system: System, cassandra) -> None:
    """SIGKILL both jobs mid-stream, restore: every alert once on the feed and once in Cassandra."""
    rule_id, key = unique("crash"), unique("x:crash")
    system.apply(Rule(rule_id, 1, condition="numbat"))
    producing = threading.Thread(target=_produce_steadily, args=(system, key), daemon=True)
    producing.start()
    _wait_for_new_checkpoint(system)
    system.restart_jobs(kill=True)
    producing.join(timeout=30)

    items = system.feed([rule_id], count=EVENTS + 1, timeout_s=60)
    keys = [i["alert"]["content_key"] for i in items]
    assert len(keys) == EVENTS and set(keys) == {f"{key}-{n}" for n in range(EVENTS)}
    rows = list(cassandra.execute(
        "SELECT alert_id FROM alerts_by_rule WHERE rule_id=%s", (rule_id,)))
    assert len(rows) == EVENTS == len({row.alert_id for row in rows})


def _produce_steadily(system: System, key: str) -> None:
    for n in range(EVENTS):
        system.produce(event(f"{key}-{n}", f"numbat sighting number {n}"))
        time.sleep(0.01)


def _wait_for_new_checkpoint(system: System, timeout_s: float = 30.0) -> None:
    """Returns once a checkpoint completes after some of the events were processed."""
    job_id = jobctl.wait_running(system.settings)
    time.sleep(1.0)
    before = _completed(system, job_id)
    deadline = time.monotonic() + timeout_s
    while _completed(system, job_id) <= before and time.monotonic() < deadline:
        time.sleep(0.2)


def _completed(system: System, job_id: str) -> int:
    return jobctl.rest(system.settings, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
