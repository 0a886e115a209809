"""The main Trackius job: content events in, alerts out, within a second.

Alert path
  content.events.v1 (raw bytes) -> DecodeEvents -> key_by(shard of content_key)
  -> AnalyzeText (+ rules.v1 broadcast): micro-batched text analysis (udfs/text.py), rule evaluation,
     dedup by alert_id -> alerts.v1, findings.v1, rules.acks.v1; bad records -> content.deadletter.v1
Media path (events with image or video parts, from DecodeEvents' side output)
  -> key_by(shard) -> AnalyzeMedia (+ rules.v1 and refs.v1 broadcast): fetch, decode, models and
     known images on the operator's own threads (udfs/media_pipeline.py) -> MediaFindings to
     findings.v1; text read in images -> back into AnalyzeText's input as Ingested (part_id kept)
Cassandra is written by jobs/store.py from alerts.v1 and findings.v1, in its own job (own
JVM, own interpreter): in one thread-mode job the writer's Python work would share this job's
GIL and slow every alert down (measured; see README).
State  rules (broadcast), pending micro-batches (list state + timer), last revision per alert_id
       (map state, TTL settings.dedup_ttl_s), media parts until their final findings (map state),
       Kafka offsets of all sources. The reference-image index is built from Cassandra in memory.

Run locally with `trackius job run`; on a cluster with `trackius job submit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyflink.common import Types

from connectors.kafka import content_source, json_sink, refs_source, rules_source
from jobs.environment import (
    execution_environment,
    kafka_stream,
    named,
    restore_point,
    shard_of,
    to_json,
)
from schemas.flink_types import json_type, record_type
from trackius.settings import Settings
from udfs.media_operators import MEDIA_RULES_STATE, AnalyzeMedia, DecodeRefNotices, RouteMedia
from udfs.operators import (
    DEAD_LETTERS,
    FINDINGS,
    MEDIA_EVENTS,
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
    findings: Any  # TextFindings JSON (one per event and per image with text), MediaFindings JSON
    dead_letters: Any  # DeadLetter JSON
    rule_acks: Any  # RuleAck JSON


def topology(events: Any, rules: Any, settings: Settings, refs: Any = None) -> Outputs:
    """Raw events, rules and reference notices in; alert, findings, dead-letter and ack JSON out
    (no connectors). Without `refs` the media path still runs, with no reference notices."""
    shards = max(1, settings.parallelism)
    ingested = named(events.process(DecodeEvents(settings.topics.content_events), record_type()), "DecodeEvents")
    # -> Ingested, and DeadLetter + Ingested with image or video parts on the side
    decoded_rules = named(rules.process(DecodeRules(settings.topics.rules), record_type()), "DecodeRules")
    # -> Rule, broadcast to every subtask of AnalyzeText and AnalyzeMedia
    media = _media(ingested.get_side_output(MEDIA_EVENTS), decoded_rules, refs, settings)
    # -> Ingested (text read in images), and MediaFindings + RuleAck JSON on the side
    analysed = named(
        ingested.union(media.routed).key_by(lambda item: shard_of(item.event.content_key, shards), Types.INT())
        .connect(decoded_rules.broadcast(RULES_STATE))
        .process(AnalyzeText(settings), record_type()),
        "AnalyzeText",
    )
    # -> Alert (new ones only) | TextFindings | RuleAck
    alerts = named(analysed.process(EncodeByType(), json_type()), "EncodeByType")
    # -> Alert JSON; TextFindings and RuleAck JSON on the side
    dead = [ingested.get_side_output(DEAD_LETTERS), decoded_rules.get_side_output(DEAD_LETTERS), *media.dead]
    return Outputs(
        alerts=alerts,
        findings=alerts.get_side_output(FINDINGS).union(media.routed.get_side_output(FINDINGS)),
        dead_letters=to_json(dead[0].union(*dead[1:]), "EncodeDeadLetters"),
        rule_acks=alerts.get_side_output(RULE_ACKS).union(media.routed.get_side_output(RULE_ACKS)),
    )


@dataclass
class _Media:
    routed: Any  # Ingested for the text analysis; findings and ack JSON on the side
    dead: list[Any]  # DeadLetter streams


def _media(events: Any, rules: Any, refs: Any, settings: Settings) -> _Media:
    shards = max(1, settings.parallelism)
    broadcast, dead = rules, []
    if refs is not None:
        notices = named(refs.process(DecodeRefNotices(settings.topics.refs), record_type()), "DecodeRefNotices")
        broadcast, dead = rules.union(notices), [notices.get_side_output(DEAD_LETTERS)]
    analysed = named(
        events.key_by(lambda item: shard_of(item.event.content_key, shards), Types.INT())
        .connect(broadcast.broadcast(MEDIA_RULES_STATE))
        .process(AnalyzeMedia(settings), record_type()),
        "AnalyzeMedia",
    )
    return _Media(named(analysed.process(RouteMedia(), record_type()), "RouteMedia"), dead)


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    env = execution_environment(settings, restore_point(settings, argv))
    topics = settings.topics

    out = topology(kafka_stream(env, content_source(settings), "content-events"),
                   kafka_stream(env, rules_source(settings), "rules"), settings,
                   kafka_stream(env, refs_source(settings), "refs"))
    for stream, topic, name in ((out.alerts, topics.alerts, "alerts"), (out.findings, topics.findings, "findings"),
                                (out.dead_letters, topics.deadletter, "dead-letters"),
                                (out.rule_acks, topics.rule_acks, "rule-acks")):
        stream.sink_to(json_sink(settings, topic)).uid(f"{name}-sink")
    env.execute(settings.job_name)


if __name__ == "__main__":
    main()
