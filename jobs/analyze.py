"""The main Trackius job: content events in, alerts out, within a second.

  content.events.v1 (raw bytes) -> DecodeEvents -> Ingested; dead letters and media events aside
  text:   key_by(shard) -> AnalyzeText (+ rules broadcast): micro-batched text analysis
          (udfs/text.py) -> Analysed (event + text findings), RuleAck
  media:  key_by(shard) -> AnalyzeMedia (+ rules and refs broadcast): fetch, decode, models and
          known references on the operator's own threads -> MediaFindings (partial, final) and
          PartClosed; text read or heard in media goes back into AnalyzeText's input
  fusion: key_by(content_key) -> Fuse (+ rules broadcast): every part's findings joined, rules
          evaluated with three-valued logic on each partial result, a deadline per item
          -> RuleMatch; text findings and FusedAnalysis -> findings.v1 (what its timers emit is
          routed on by ShapeAlerts: thread mode drops side-output tags of timer emissions)
  alerts: watermarks (event time = published_at) -> key_by(rule_id) -> ShapeAlerts: stories,
          revisions, windowed patterns -> Alert -> alerts.v1
Every operator that holds rules acknowledges each version on rules.acks.v1. Cassandra is written
by jobs/store.py from alerts.v1 and findings.v1, in its own job (own JVM, own interpreter): in one
thread-mode job the writer's Python work would share this job's GIL and slow every alert down.
State  rules (broadcast), pending micro-batches (list state + timer), media parts until their
       final findings (map state), one Content per content key (value state, TTL
       settings.fusion_ttl_s), per rule: stories, alert revisions and window counts (map state),
       Kafka offsets of all sources. The reference indexes are built from Cassandra in memory.

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
from udfs.fuse_operators import FUSE_RULES_STATE, Fuse, MatchTime, ShapeAlerts, rule_of
from udfs.media_operators import (
    MEDIA_RULES_STATE,
    TO_FUSION,
    AnalyzeMedia,
    DecodeRefNotices,
    RouteMedia,
)
from udfs.operators import (
    DEAD_LETTERS,
    FINDINGS,
    MEDIA_EVENTS,
    RULE_ACKS,
    RULES_STATE,
    AnalyzeText,
    DecodeEvents,
    DecodeRules,
)


@dataclass
class Outputs:
    alerts: Any  # Alert JSON, each alert_id and revision once
    findings: Any  # TextFindings, MediaFindings and FusedAnalysis JSON
    dead_letters: Any  # DeadLetter JSON
    rule_acks: Any  # RuleAck JSON


def topology(events: Any, rules: Any, settings: Settings, refs: Any = None) -> Outputs:
    """Raw events, rules and reference notices in; alert, findings, dead-letter and ack JSON out
    (no connectors). Without `refs` the media path still runs, with no reference notices."""
    shards = max(1, settings.parallelism)
    ingested = named(events.process(DecodeEvents(settings.topics.content_events), record_type()), "DecodeEvents")
    # -> Ingested, and DeadLetter + Ingested with media parts on the side
    decoded_rules = named(rules.process(DecodeRules(settings.topics.rules), record_type()), "DecodeRules")
    # -> Rule, broadcast to AnalyzeText, AnalyzeMedia and Fuse
    media = _media(ingested.get_side_output(MEDIA_EVENTS), decoded_rules, refs, settings)
    # -> Ingested (text read or heard in media); MediaFindings and PartClosed for fusion aside
    text = named(
        ingested.union(media.routed).key_by(lambda item: shard_of(item.event.content_key, shards), Types.INT())
        .connect(decoded_rules.broadcast(RULES_STATE))
        .process(AnalyzeText(settings), record_type()),
        "AnalyzeText",
    )
    # -> Analysed | RuleAck, both to Fuse: a router of its own here would cost every event a hop
    fused = named(
        text.union(media.routed.get_side_output(TO_FUSION)).key_by(fusion_key, Types.STRING())
        .connect(decoded_rules.broadcast(FUSE_RULES_STATE))
        .process(Fuse(settings), record_type()),
        "Fuse",
    )
    # -> RuleMatch, Rule; findings and ack JSON aside; what its timers emit passes on to ShapeAlerts
    alerts = named(
        fused.assign_timestamps_and_watermarks(match_watermarks(settings)).key_by(rule_of, Types.STRING())
        .process(ShapeAlerts(settings), json_type()),
        "ShapeAlerts",
    ).disable_chaining()  # fused with a consumer's map, PyFlink would give that operator this uid too
    dead = [ingested.get_side_output(DEAD_LETTERS), decoded_rules.get_side_output(DEAD_LETTERS),
            alerts.get_side_output(DEAD_LETTERS), *media.dead]
    return Outputs(
        alerts=alerts,
        findings=media.routed.get_side_output(FINDINGS).union(fused.get_side_output(FINDINGS),
                                                              alerts.get_side_output(FINDINGS)),
        dead_letters=to_json(dead[0].union(*dead[1:]), "EncodeDeadLetters"),
        rule_acks=media.routed.get_side_output(RULE_ACKS).union(fused.get_side_output(RULE_ACKS),
                                                                alerts.get_side_output(RULE_ACKS)),
    )


def fusion_key(item: Any) -> str:
    """Analysed carries its event; MediaFindings and PartClosed their content key; a RuleAck of
    AnalyzeText only passes through Fuse (keyed apart from any content)."""
    if hasattr(item, "event"):
        return item.event.content_key
    return item.content_key if hasattr(item, "content_key") else f"\x1frule-ack:{item.rule_id}"


def match_watermarks(settings: Settings) -> Any:
    """Event time for the windows, assigned after Fuse: watermarks assigned at the sources would
    meet the rules broadcast in Fuse, and the mostly idle rules stream would hold them back forever.
    A Fuse subtask without matches for watermark_idle_ms stops holding the others back."""
    from pyflink.common import Duration, WatermarkStrategy

    return (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(settings.watermark_out_of_order_ms))
            .with_idleness(Duration.of_millis(settings.watermark_idle_ms))
            .with_timestamp_assigner(MatchTime()))


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
