"""The main Trackius job: content events in, alerts out, within a second.

Alert path
  content.events.v1 (raw bytes) -> DecodeEvents -> key_by(shard of content_key)
  -> AnalyzeText (+ rules.v1 broadcast): micro-batched text analysis (udfs/text.py), rule evaluation,
     dedup by alert_id -> alerts.v1, findings.v1, rules.acks.v1; bad records -> content.deadletter.v1
Cassandra is written by jobs/store.py from alerts.v1 and findings.v1, in its own job (own
JVM, own interpreter): in one thread-mode job the writer's Python work would share this job's
GIL and slow every alert down (measured; see README).
State  rules (broadcast), pending micro-batches (list state + timer), last revision per alert_id
       (map state, TTL settings.dedup_ttl_s), Kafka offsets of all sources

Run locally with `trackius job run`; on a cluster with `trackius job submit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyflink.common import Types

from connectors.kafka import content_source, json_sink, rules_source
from jobs.environment import execution_environment, kafka_stream, named, restore_point, shard_of, to_json
from schemas.flink_types import json_type, record_type
from trackius.settings import Settings
from udfs.operators import (
    DEAD_LETTERS,
    FINDINGS,
    RULE_ACKS,
    RULES_STATE,
    AnalyzeText,
    DecodeEvents,
    DecodeRules,
    EncodeByType,
)


@dataclass
class Outputs:
    alerts: Any  # Alert JSON, each alert_id and revision once
    findings: Any  # TextFindings JSON, one per event
    dead_letters: Any  # DeadLetter JSON
    rule_acks: Any  # RuleAck JSON


def topology(events: Any, rules: Any, settings: Settings) -> Outputs:
    """Raw events and rules in; alert, findings, dead-letter and ack JSON out (no connectors)."""
    shards = max(1, settings.parallelism)
    ingested = named(events.process(DecodeEvents(settings.topics.content_events), record_type()), "DecodeEvents")
    # -> Ingested, and DeadLetter on the side
    decoded_rules = named(rules.process(DecodeRules(settings.topics.rules), record_type()), "DecodeRules")
    # -> Rule, broadcast to every subtask of AnalyzeText
    analysed = named(
        ingested.key_by(lambda item: shard_of(item.event.content_key, shards), Types.INT())
        .connect(decoded_rules.broadcast(RULES_STATE))
        .process(AnalyzeText(settings), record_type()),
        "AnalyzeText",
    )
    # -> Alert (new ones only) | TextFindings | RuleAck
    alerts = named(analysed.process(EncodeByType(), json_type()), "EncodeByType")
    # -> Alert JSON; TextFindings and RuleAck JSON on the side
    return Outputs(
        alerts=alerts,
        findings=alerts.get_side_output(FINDINGS),
        dead_letters=to_json(ingested.get_side_output(DEAD_LETTERS).union(
            decoded_rules.get_side_output(DEAD_LETTERS)), "EncodeDeadLetters"),
        rule_acks=alerts.get_side_output(RULE_ACKS),
    )


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    env = execution_environment(settings, restore_point(settings, argv))
    topics = settings.topics

    out = topology(kafka_stream(env, content_source(settings), "content-events"),
                   kafka_stream(env, rules_source(settings), "rules"), settings)
    for stream, topic, name in ((out.alerts, topics.alerts, "alerts"), (out.findings, topics.findings, "findings"),
                                (out.dead_letters, topics.deadletter, "dead-letters"),
                                (out.rule_acks, topics.rule_acks, "rule-acks")):
        stream.sink_to(json_sink(settings, topic)).uid(f"{name}-sink")
    env.execute(settings.job_name)


if __name__ == "__main__":
    main()
