"""Publishing rules to rules.v1 and waiting until the running job applies them.

Records are keyed by rule id (compaction keeps the latest). A deletion is a record with a newer
version and `deleted: true`. `publish(..., wait=True)` returns once every rule-holding operator
of the job (each subtask) has acknowledged the version on rules.acks.v1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kafka import TopicPartition

from connectors.kafka import consumer, producer
from schemas.codec import decode, encode
from schemas.errors import RecordError, TrackiusError
from schemas.rule import Rule, RuleAck, decode_rule
from trackius.settings import Settings


class RuleWaitTimeout(TrackiusError):
    """The job did not acknowledge a rule version in time (is `trackius job run` running?)."""


def publish(settings: Settings, rules: Sequence[Rule], wait: bool = False, timeout_s: float = 60.0) -> None:
    acks = _ack_reader(settings) if wait else None
    with _producer(settings) as send:
        for rule in rules:
            send(settings.topics.rules, key=rule.rule_id.encode(), value=encode(rule).encode())
    if acks is not None:
        _await_acks(acks, {rule.rule_id: rule.version for rule in rules}, timeout_s)


def current_rules(settings: Settings, timeout_s: float = 5.0) -> dict[str, Rule]:
    """The latest record of every rule on rules.v1 (deleted ones included)."""
    reader = consumer(settings, settings.topics.rules, consumer_timeout_ms=int(timeout_s * 1000))
    latest: dict[str, Rule] = {}
    try:
        for message in reader:
            try:
                rule = decode_rule(message.value)
            except RecordError:
                continue  # the job dead-letters it; listing skips it
            if rule.rule_id not in latest or latest[rule.rule_id].version <= rule.version:
                latest[rule.rule_id] = rule
    finally:
        reader.close()
    return latest


def deletion(settings: Settings, rule_id: str) -> Rule:
    current = current_rules(settings).get(rule_id)
    if current is None:
        raise RecordError(f"rule {rule_id} is not on {settings.topics.rules}")
    return Rule(rule_id=rule_id, version=current.version + 1, deleted=True)


class _producer:
    def __init__(self, settings: Settings) -> None:
        self.client = producer(settings, acks="all")

    def __enter__(self):
        return self.client.send

    def __exit__(self, *exc: object) -> None:
        self.client.flush()
        self.client.close()


def _ack_reader(settings: Settings):
    """A consumer positioned at the current end of the ack topic, before anything is published."""
    reader = consumer(settings, consumer_timeout_ms=200)
    partitions = [TopicPartition(settings.topics.rule_acks, p)
                  for p in reader.partitions_for_topic(settings.topics.rule_acks) or {0}]
    reader.assign(partitions)
    for partition, offset in reader.end_offsets(partitions).items():
        reader.seek(partition, offset)
    return reader


def _await_acks(reader, wanted: dict[str, int], timeout_s: float) -> None:
    seen: dict[tuple[str, str], set[int]] = {}  # (rule, operator) -> subtasks that acked
    expected: dict[str, dict[str, int]] = {}  # rule -> operator -> its parallelism
    deadline = time.monotonic() + timeout_s
    try:
        while _missing(wanted, seen, expected):
            if time.monotonic() > deadline:
                raise RuleWaitTimeout(
                    f"no acknowledgement from the job for {sorted(_missing(wanted, seen, expected))} "
                    f"within {timeout_s:.0f} s: is the job running (trackius job run)?")
            for message in reader:
                ack = decode(RuleAck, message.value)
                if wanted.get(ack.rule_id, 1 << 62) <= ack.version:
                    seen.setdefault((ack.rule_id, ack.operator), set()).add(ack.subtask)
                    holders = expected.setdefault(ack.rule_id, dict.fromkeys(ack.operators, 1))
                    holders[ack.operator] = ack.subtasks
    finally:
        reader.close()


def _missing(wanted: dict[str, int], seen: dict, expected: dict) -> set[str]:
    missing = set()
    for rule_id in wanted:
        if rule_id not in expected:
            missing.add(rule_id)
            continue
        if any(len(seen.get((rule_id, op), ())) < n for op, n in expected[rule_id].items()):
            missing.add(rule_id)
    return missing

