"""Thin Flink adapters of fusion (udfs/fusion.py) and alert shaping (udfs/alerting.py).

    Fuse         Analysed | MediaFindings | PartClosed | RuleAck (AnalyzeText's, passed on), keyed
                 by content_key (+ rules broadcast) -> RuleMatch, Rule (changes, for ShapeAlerts);
                 findings and ack JSON on side outputs; from timers and the broadcast side all on
                 the main output (FusedAnalysis, RuleAck, DeadLetter), routed on by ShapeAlerts
                 one Content per item with media in value state (TTL settings.fusion_ttl_s), a
                 processing-time deadline per item (settings.fusion_deadline_for(platform));
                 a text-only item is decided at once and keeps no state
    MatchTime    event time of RuleMatch: published_at (watermarks are assigned after Fuse, so the
                 idle rules broadcast never holds them back)
    ShapeAlerts  RuleMatch | Rule, keyed by rule_id -> Alert JSON (stories, revisions, windows);
                 FusedAnalysis, RuleAck, DeadLetter from Fuse -> side outputs
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pyflink.common import Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import KeyedBroadcastProcessFunction, KeyedProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from schemas.codec import encode
from schemas.deadletter import DeadLetter, dead_letter
from schemas.findings import TEXT_PART
from schemas.flink_types import record_type
from schemas.fused import FusedAnalysis
from schemas.pipeline import Analysed, RuleMatch
from schemas.rule import Rule, RuleAck
from trackius.settings import Settings
from udfs.alerting import RuleAlerts, event_time
from udfs.fusion import Content, expected_media, matches, with_fired
from udfs.operators import (
    DEAD_LETTERS,
    FINDINGS,
    RULE_ACKS,
    RULE_HOLDERS,
    now_ms,
    share_the_interpreter_fairly,
    subtask_of,
    ttl,
)
from udfs.rules import RuleBook
from udfs.stories import RotatingStore, StoryIndex

FUSE_RULES_STATE = MapStateDescriptor("fuse-rules", Types.STRING(), record_type())


class Fuse(KeyedBroadcastProcessFunction):
    operator = "fuse"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        share_the_interpreter_fairly()
        self.subtask, self.subtasks = subtask_of(runtime_context)
        descriptor = ValueStateDescriptor("content", record_type())
        descriptor.enable_time_to_live(ttl(self.settings.fusion_ttl_s))
        self.state = runtime_context.get_state(descriptor)
        self.book: RuleBook | None = None
        self.undeclared_wait_ms = self.settings.longest_fusion_deadline_ms
        self.sound_of_video = self.settings.sound_of_video
        metrics = runtime_context.get_metrics_group()
        self.matched = metrics.counter("rule_matches")
        self.timed_out = metrics.counter("fusion_timed_out")
        self.unknown = metrics.counter("fusion_unknown_content")

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        if isinstance(value, RuleAck):
            yield RULE_ACKS, encode(value)
            return
        now = now_ms()
        key = ctx.get_current_key()
        if isinstance(value, Analysed):
            yield FINDINGS, encode(value.findings)
            if value.findings.part_id == TEXT_PART and not expected_media(value.event, self.sound_of_video):
                yield from self._text_only(value, ctx, now)
                return
        content: Content | None = self.state.value()
        timers = ctx.timer_service()
        if content is None:
            content = Content(key)
            if not isinstance(value, Analysed):  # media before its declaration: wait, but not forever
                timers.register_processing_time_timer(now + self.undeclared_wait_ms)
        declared = content.declared
        if isinstance(value, Analysed):
            content.add(value.findings, value.event, value.ingested_at, self.sound_of_video)
        else:
            content.add(value)
        if content.declared and not declared and content.expected:
            content.deadline_at = now + self.settings.fusion_deadline_for(content.event.platform)
            timers.register_processing_time_timer(content.deadline_at)
        for record in self._decide(content, ctx, now):
            yield (FINDINGS, encode(record)) if isinstance(record, FusedAnalysis) else record

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        """Deadlines, forgetting, undeclared keys. What it emits all goes to the main output
        (thread mode drops side-output tags here), and ShapeAlerts routes it on."""
        content: Content | None = self.state.value()
        if content is None:
            return
        if content.forget_at and timestamp >= content.forget_at:
            self.state.clear()
            return
        if not content.declared:
            self.unknown.inc()
            self.state.clear()
            reason = (f"findings for content key {content.content_key!r} arrived, but no content event "
                      f"declared it within {self.undeclared_wait_ms} ms; dropped")
            yield dead_letter(encode(content.fused(timestamp, ())).encode(), "fuse", reason,
                              self.settings.topics.findings, now_ms())
            return
        if content.complete or content.timed_out or timestamp < content.deadline_at:
            return
        self.timed_out.inc()
        content.timed_out = True
        yield from self._decide(content, ctx, now_ms())

    def process_broadcast_element(self, value: Rule, ctx: Any) -> Iterator[Any]:
        """The rule and its ack go on to ShapeAlerts (which restarts the rule's windows when they
        changed, and routes the ack)."""
        state = ctx.get_broadcast_state(FUSE_RULES_STATE)
        current = state.get(value.rule_id)
        if current is None or current.version <= value.version:
            state.put(value.rule_id, value)
            if self.book is not None:
                self.book.apply(value)
            yield value
        yield RuleAck(value.rule_id, value.version, self.operator, self.subtask, self.subtasks, RULE_HOLDERS)

    def _rules(self, ctx: Any) -> RuleBook:
        if self.book is None:  # after open or a restore: broadcast state is the truth
            self.book = RuleBook.of(rule for _, rule in ctx.get_broadcast_state(FUSE_RULES_STATE).items())
        return self.book

    def _text_only(self, value: Analysed, ctx: Any, now: int) -> Iterator[Any]:
        """Complete on arrival: decided at once, nothing kept (most items are text only; a
        duplicate is decided again, and ShapeAlerts drops the repeated evidence)."""
        content = Content(value.event.content_key)
        content.add(value.findings, value.event, value.ingested_at, self.sound_of_video)
        for match in matches(content, self._rules(ctx).index, now):
            self.matched.inc()
            yield match

    def _decide(self, content: Content, ctx: Any, now: int) -> Iterator[Any]:
        if content.declared:
            for match in matches(content, self._rules(ctx).index, now):
                self.matched.inc()
                yield match
            if content.expected and (content.complete or content.timed_out):
                fused = content.fused(now, with_fired(content))
                digest = encode(replace(fused, fused_at=0))
                if digest != content.reported:
                    content.reported = digest
                    yield fused
            if content.complete and not content.forget_at:
                # Nothing more can come: keep it a moment for duplicates, then free the key.
                # A duplicate after that is decided again, and ShapeAlerts drops repeated evidence.
                content.forget_at = now + self.settings.fusion_linger_ms
                ctx.timer_service().register_processing_time_timer(content.forget_at)
        self.state.update(content)


class MatchTime(TimestampAssigner):
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return event_time(value) if isinstance(value, RuleMatch) else 0


def rule_of(value: Any) -> str:
    """ShapeAlerts' key: the rule of a match or a rule change; what only passes through (from
    Fuse's timers and broadcast side) is keyed apart from every rule."""
    if isinstance(value, RuleMatch):
        return value.rule.rule_id
    return value.rule_id if isinstance(value, Rule) else PASSING_THROUGH


PASSING_THROUGH = "\x1fpassing-through"


class ShapeAlerts(KeyedProcessFunction):
    """Keyed by rule id: stories, alert revisions and windows of one rule (udfs/alerting.py).
    Emits the alerts as JSON (a separate encoding step chained after it would get its uid twice
    in PyFlink's operator fusion), and routes what Fuse emitted from its timers and broadcast
    side (FusedAnalysis, RuleAck, DeadLetter) to side outputs: a router of its own between them
    would cost every event a hop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: Any) -> None:
        share_the_interpreter_fairly()
        revisions = MapStateDescriptor("alert-revisions", Types.STRING(), record_type())
        revisions.enable_time_to_live(ttl(self.settings.story_ttl_s))
        self.revisions = runtime_context.get_map_state(revisions)
        # windows forget by themselves; a spike's baseline must outlive any TTL
        self.windows = runtime_context.get_map_state(MapStateDescriptor("windows", Types.STRING(), record_type()))
        self.stories: dict[str, StoryIndex] = {}  # per rule, in memory (see RotatingStore)
        metrics = runtime_context.get_metrics_group()
        self.alerts_out = metrics.counter("alerts_out")
        self.late = metrics.counter("late_window_matches")

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        if isinstance(value, FusedAnalysis):
            yield FINDINGS, encode(value)
            return
        if isinstance(value, RuleAck):
            yield RULE_ACKS, encode(value)
            return
        if isinstance(value, DeadLetter):
            yield DEAD_LETTERS, value
            return
        now = now_ms()
        alerts = self._rule(ctx.get_current_key(), now)
        if isinstance(value, Rule):
            alerts.on_rule(value)
            return
        found, late = alerts.on_match(value, ctx.timer_service().current_watermark(), now)
        self.late.inc(late)
        if value.rule.window is not None:
            self._arm(alerts, ctx)
        for alert in found:
            self.alerts_out.inc()
            yield encode(alert)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        now = now_ms()
        alerts = self._rule(ctx.get_current_key(), now)
        for alert in alerts.on_watermark(ctx.timer_service().current_watermark(), now):
            self.alerts_out.inc()
            yield encode(alert)
        self._arm(alerts, ctx)

    def _rule(self, rule_id: str, now: int) -> RuleAlerts:
        """The rule's alerts: revisions and windows in keyed state, its stories in memory. After a
        restart the stories start empty: a repost of an older story then opens a new one."""
        index = self.stories.get(rule_id)
        if index is None:
            period = self.settings.story_ttl_s * 1000
            index = self.stories[rule_id] = StoryIndex(RotatingStore(period), RotatingStore(period), period)
        for store in (index.stories, index.buckets):
            store.rotate(now)
        return RuleAlerts(index, self.revisions, self.windows)

    def _arm(self, alerts: RuleAlerts, ctx: Any) -> None:
        due = alerts.next_timer()
        if due is not None:
            ctx.timer_service().register_event_time_timer(due)
