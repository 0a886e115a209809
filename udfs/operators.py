"""Thin Flink adapters around the pure cores: open() builds, process hands over, side outputs carry
the errors. Clocks are read here, never in the cores.

    DecodeEvents    raw bytes            -> Ingested               | dead letters
    DecodeRules     raw bytes            -> Rule                   | dead letters
    ScoreText       Ingested (by shard)  -> Analysed, micro-batched | rule acks   (+ rules broadcast)
    EvaluateRules   Analysed (by key)    -> Alert                  | rule acks   (+ rules broadcast)
    DedupAlerts     Alert (by alert_id)  -> Alert, first of each revision only
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import (
    KeyedBroadcastProcessFunction,
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig, ValueStateDescriptor

from schemas.alert import Alert
from schemas.content import decode_event
from schemas.deadletter import dead_letter
from schemas.errors import RecordError
from schemas.flink_types import record_type
from schemas.pipeline import Analysed, Ingested
from schemas.rule import Rule, RuleAck, decode_rule
from udfs.batching import MicroBatch
from udfs.rules import RuleBook, alerts_for
from udfs.text import TextAnalyzer, Vocabulary

DEAD_LETTERS = OutputTag("dead-letters", record_type())
RULE_ACKS = OutputTag("rule-acks", record_type())
RULES_STATE = MapStateDescriptor("rules", Types.STRING(), record_type())
# Every operator that holds rules acknowledges each version; `trackius rules apply --wait` waits
# for all of them, so a rule is applied everywhere before it reports success.
RULE_HOLDERS = ("score-text", "evaluate-rules")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def subtask_of(runtime_context: RuntimeContext) -> tuple[int, int]:
    """(index, parallelism) of this subtask.

    PyFlink 2.2's thread-mode runtime context still calls the RuntimeContext methods that Flink
    2.0 moved to TaskInfo, so read TaskInfo directly when the wrapper's call fails.
    """
    try:
        return runtime_context.get_index_of_this_subtask(), runtime_context.get_number_of_parallel_subtasks()
    except AttributeError:
        info = runtime_context._runtime_context.getTaskInfo()  # the Java context in thread mode
        return info.getIndexOfThisSubtask(), info.getNumberOfParallelSubtasks()


class DecodeEvents(ProcessFunction):
    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        metrics = runtime_context.get_metrics_group()
        self.events_in = metrics.counter("events_in")
        self.dead_letters = metrics.counter("dead_letters")

    def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
        self.events_in.inc()
        try:
            yield Ingested(decode_event(bytes(value)), now_ms())
        except RecordError as exc:
            self.dead_letters.inc()
            yield DEAD_LETTERS, dead_letter(bytes(value), "decode", str(exc), self.source_topic, now_ms())


class DecodeRules(ProcessFunction):
    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
        try:
            yield decode_rule(bytes(value))
        except RecordError as exc:
            yield DEAD_LETTERS, dead_letter(bytes(value), "rules", str(exc), self.source_topic, now_ms())


class _RuleHolder:
    """Shared broadcast side: keep rules in broadcast state and a compiled copy in memory."""

    operator = ""

    def _open_rules(self, runtime_context: RuntimeContext) -> None:
        self.subtask, self.subtasks = subtask_of(runtime_context)
        self.book: RuleBook | None = None  # rebuilt lazily: after a restore, state is all we have

    def _apply_rule(self, rule: Rule, ctx: Any) -> Iterator[Any]:
        state = ctx.get_broadcast_state(RULES_STATE)
        current = state.get(rule.rule_id)
        if current is None or current.version <= rule.version:
            state.put(rule.rule_id, rule)
            self.book = None
        yield RULE_ACKS, RuleAck(rule.rule_id, rule.version, self.operator, self.subtask,
                                 self.subtasks, RULE_HOLDERS)

    def _rules(self, ctx: Any) -> RuleBook:
        if self.book is None:
            self.book = RuleBook.of(rule for _, rule in ctx.get_broadcast_state(RULES_STATE).items())
            self._rules_changed(self.book)
        return self.book

    def _rules_changed(self, book: RuleBook) -> None:
        pass


class ScoreText(_RuleHolder, KeyedBroadcastProcessFunction):
    operator = "score-text"

    def __init__(self, max_text_chars: int, batch_size: int, batch_max_wait_ms: int) -> None:
        self.max_text_chars = max_text_chars
        self.batch = MicroBatch(batch_size, batch_max_wait_ms)

    def open(self, runtime_context: RuntimeContext) -> None:
        self._open_rules(runtime_context)
        self.analyzer = TextAnalyzer(self.max_text_chars)
        self.vocabulary = Vocabulary()
        self.batch.open(runtime_context, "text")

    def _rules_changed(self, book: RuleBook) -> None:
        self.vocabulary = Vocabulary.from_rules(book.active())

    def process_element(self, value: Ingested, ctx: Any) -> Iterator[Analysed]:
        if self.batch.add(value, ctx):
            yield from self._flush(ctx)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Analysed]:
        yield from self._flush(ctx)

    def process_broadcast_element(self, value: Rule, ctx: Any) -> Iterator[Any]:
        yield from self._apply_rule(value, ctx)

    def _flush(self, ctx: Any) -> Iterator[Analysed]:
        items = self.batch.take()
        if not items:
            return
        self._rules(ctx)
        findings = self.analyzer.score_batch([item.event for item in items], self.vocabulary)
        analysed_at = now_ms()
        self.batch.record(len(items), analysed_at - min(item.ingested_at for item in items))
        for item, found in zip(items, findings):
            yield Analysed(item.event, found, item.ingested_at, analysed_at)


class EvaluateRules(_RuleHolder, KeyedBroadcastProcessFunction):
    operator = "evaluate-rules"

    def open(self, runtime_context: RuntimeContext) -> None:
        self._open_rules(runtime_context)
        self.alerts_out = runtime_context.get_metrics_group().counter("alerts_out")

    def process_element(self, value: Analysed, ctx: Any) -> Iterator[Alert]:
        for alert in alerts_for(value, self._rules(ctx), now_ms()):
            self.alerts_out.inc()
            yield alert

    def process_broadcast_element(self, value: Rule, ctx: Any) -> Iterator[Any]:
        yield from self._apply_rule(value, ctx)


class DedupAlerts(KeyedProcessFunction):
    """Keyed by alert_id: forward a revision only if it is newer than the last one forwarded."""

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s

    def open(self, runtime_context: RuntimeContext) -> None:
        descriptor = ValueStateDescriptor("last-revision", Types.INT())
        descriptor.enable_time_to_live(StateTtlConfig.new_builder(_seconds(self.ttl_s)).build())
        self.last_revision = runtime_context.get_state(descriptor)
        self.duplicates = runtime_context.get_metrics_group().counter("duplicate_alerts")

    def process_element(self, value: Alert, ctx: KeyedProcessFunction.Context) -> Iterator[Alert]:
        last = self.last_revision.value()
        if last is not None and last >= value.revision:
            self.duplicates.inc()
            return
        self.last_revision.update(value.revision)
        yield value


def _seconds(seconds: int) -> Any:
    from pyflink.common.time import Time

    return Time.seconds(seconds)

