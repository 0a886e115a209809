"""The main Trackius job: content events in, alerts out, within a second.

Inputs   content.events.v1 (raw JSON bytes), rules.v1 (compacted; broadcast to the rule holders)
Keys     shard of content_key (micro-batched text analysis), content_key (rule evaluation),
         alert_id (dedup), shard of the row (Cassandra batches)
State    rules (broadcast), pending micro-batches (list state + timer), last alert revision
         per alert_id (TTL settings.dedup_ttl_s)
Outputs  alerts.v1, content.deadletter.v1, rules.acks.v1, Cassandra alerts_by_rule and
         findings_by_content

Run locally with `trackius job run`; on a cluster with `trackius job submit`.
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflink.common import Types, WatermarkStrategy

from connectors.cassandra import WriteCassandra
from connectors.kafka import content_source, json_sink, rules_source
from jobs.environment import execution_environment, latest_checkpoint
from schemas.alert import alert_row
from schemas.codec import encode
from schemas.findings import findings_row
from schemas.flink_types import json_type, record_type
from schemas.pipeline import StoredRow
from trackius.settings import Settings
from udfs.operators import (
    DEAD_LETTERS, RULE_ACKS, RULES_STATE,
    DecodeEvents, DecodeRules, DedupAlerts, EvaluateRules, ScoreText,
)


@dataclass
class Outputs:
    alerts: Any  # Alert, one per alert_id and revision
    dead_letters: Any  # DeadLetter
    rule_acks: Any  # RuleAck
    stored_rows: Any  # StoredRow for Cassandra


def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards


def topology(events: Any, rules: Any, settings: Settings) -> Outputs:
    shards = max(1, settings.parallelism)
    ingested = named(events.process(DecodeEvents(settings.topics.content_events), record_type()), "DecodeEvents")
    # -> Ingested, and DeadLetter on the side
    decoded_rules = named(rules.process(DecodeRules(settings.topics.rules), record_type()), "DecodeRules")
    rules_broadcast = decoded_rules.broadcast(RULES_STATE)
    # -> Rule, on every subtask of every rule holder
    analysed = named(
        ingested.key_by(lambda item: shard_of(item.event.content_key, shards), Types.INT())
        .connect(rules_broadcast)
        .process(ScoreText(settings.max_text_chars, settings.batch_size, settings.batch_max_wait_ms),
                 record_type()),
        "ScoreText",
    )
    # -> Analysed, one per event, in micro-batches
    fired = named(
        analysed.key_by(lambda item: item.event.content_key, Types.STRING())
        .connect(rules_broadcast)
        .process(EvaluateRules(), record_type()),
        "EvaluateRules",
    )
    # -> Alert, one per rule that fires
    alerts = named(
        fired.key_by(lambda alert: alert.alert_id, Types.STRING())
        .process(DedupAlerts(settings.dedup_ttl_s), record_type()),
        "DedupAlerts",
    )
    # -> Alert, each alert_id and revision once (per restore)
    stored = alerts.map(lambda a: StoredRow("alert", alert_row(a)), record_type()).union(
        analysed.map(lambda a: StoredRow("findings", findings_row(a.findings, a.event.collected_at,
                                                                 a.analysed_at)), record_type())
    )
    return Outputs(
        alerts=alerts,
        dead_letters=ingested.get_side_output(DEAD_LETTERS).union(decoded_rules.get_side_output(DEAD_LETTERS)),
        rule_acks=analysed.get_side_output(RULE_ACKS).union(fired.get_side_output(RULE_ACKS)),
        stored_rows=stored,
    )


def named(stream: Any, name: str) -> Any:
    """Operator name as in the adapter's class; the uid in kebab case (savepoints depend on it)."""
    uid = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
    return stream.name(name).uid(uid)


def to_json(stream: Any, name: str) -> Any:
    return named(stream.map(encode, json_type()), name)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    settings = Settings.from_env()
    restore = args.restore_from or (latest_checkpoint(settings) if args.resume else None)
    if restore:
        print(f"restoring from {restore}", flush=True)
    env = execution_environment(settings, restore)
    no_watermarks = WatermarkStrategy.no_watermarks()
    events = env.from_source(content_source(settings), no_watermarks, "content-events").uid("content-events")
    rules = env.from_source(rules_source(settings), no_watermarks, "rules").uid("rules")

    out = topology(events, rules, settings)

    to_json(out.alerts, "EncodeAlerts").sink_to(json_sink(settings, settings.topics.alerts)).uid("alerts-sink")
    to_json(out.dead_letters, "EncodeDeadLetters").sink_to(
        json_sink(settings, settings.topics.deadletter)).uid("dead-letters-sink")
    to_json(out.rule_acks, "EncodeRuleAcks").sink_to(
        json_sink(settings, settings.topics.rule_acks)).uid("rule-acks-sink")
    # A separate chain, so waiting on Cassandra never delays the Kafka alert sink.
    named(
        out.stored_rows.key_by(lambda row: shard_of(row.values[0], max(1, settings.parallelism)), Types.INT())
        .process(WriteCassandra(settings)),
        "WriteCassandra",
    ).start_new_chain()
    env.execute(settings.job_name)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true", help="restore from the latest checkpoint")
    parser.add_argument("--restore-from", type=Path, help="restore from this checkpoint or savepoint")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
