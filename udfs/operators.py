"""Thin Flink adapters around the pure cores: open() builds, process hands over, side outputs carry
the errors. Clocks are read here, never in the cores.

    DecodeEvents    raw bytes            -> Ingested               | dead letters, media events
    DecodeRules     raw bytes            -> Rule                   | dead letters
    AnalyzeText     Ingested (by shard)  -> Analysed, RuleAck (both on to Fuse)
                    micro-batched text analysis (udfs/text.py), scanning for the terms of the
                    compiled rule index (+ rules broadcast); rules are evaluated after fusion
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pyflink.common import Types
from pyflink.datastream import (
    KeyedBroadcastProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig

from schemas.content import decode_event
from schemas.deadletter import dead_letter
from schemas.errors import RecordError
from schemas.findings import TEXT_PART
from schemas.flink_types import json_type, record_type
from schemas.pipeline import Analysed, Ingested
from schemas.rule import Rule, RuleAck, decode_rule
from trackius.settings import Settings
from udfs.batching import MicroBatch
from udfs.rules import RuleBook
from udfs.threads import on_python_thread

SWITCH_INTERVAL_S = 0.0001
DEAD_LETTERS = OutputTag("dead-letters", record_type())
RULE_ACKS = OutputTag("rule-acks", json_type())
FINDINGS = OutputTag("findings", json_type())
MEDIA_EVENTS = OutputTag("media-events", record_type())  # events with image or video parts
MEDIA_KINDS = frozenset({"image", "video", "audio"})
RULES_STATE = MapStateDescriptor("rules", Types.STRING(), record_type())
# Every operator that holds rules acknowledges each version; `trackius rules apply --wait` waits
# for all of them, so a rule is applied everywhere before it reports success.
RULE_HOLDERS = ("analyze-text", "analyze-media", "fuse")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def share_the_interpreter_fairly() -> None:
    """Thread mode runs every Python function of a TaskManager in one interpreter. A thread that
    wants the GIL waits up to the switch interval (5 ms by default) for its holder, once per
    call from Java, so busy neighbours would add milliseconds to every record; 0.1 ms keeps the
    wait well below the per-event budget."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


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
        share_the_interpreter_fairly()
        metrics = runtime_context.get_metrics_group()
        self.events_in = metrics.counter("events_in")
        self.dead_letters = metrics.counter("dead_letters")

    def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
        self.events_in.inc()
        try:
            ingested = Ingested(decode_event(bytes(value)), now_ms())
        except RecordError as exc:
            self.dead_letters.inc()
            yield DEAD_LETTERS, dead_letter(bytes(value), "decode", str(exc), self.source_topic, now_ms())
            return
        yield ingested
        if any(part.kind in MEDIA_KINDS for part in ingested.event.parts):
            yield MEDIA_EVENTS, ingested


class DecodeRules(ProcessFunction):
    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
        try:
            yield decode_rule(bytes(value))
        except RecordError as exc:
            yield DEAD_LETTERS, dead_letter(bytes(value), "rules", str(exc), self.source_topic, now_ms())


class AnalyzeText(KeyedBroadcastProcessFunction):
    """Keyed by shard of content_key, with the rules broadcast to every subtask (the scan looks
    for every term of the active rules).

    Ingested -> Analysed (the event with its text findings), RuleAck: both on the main output,
    to Fuse, which passes the findings and acks on (PyFlink 2.2's thread mode drops the
    side-output tag of records emitted from on_timer, so they could not be split here).
    """

    operator = "analyze-text"

    def __init__(self, settings: Settings) -> None:
        self.max_text_chars = settings.max_text_chars
        self.nltk_data_dir = settings.nltk_data_dir
        self.project_model_dir = settings.project_model_dir
        self.batch = MicroBatch(settings.batch_size, settings.batch_max_wait_ms)

    def open(self, runtime_context: RuntimeContext) -> None:
        self.subtask, self.subtasks = subtask_of(runtime_context)
        self.analyzer = on_python_thread(self._create_analyzer)
        # The models are ~150,000 long-lived objects that every full garbage collection would
        # traverse again (~85 ms, a pause in the middle of a batch): move them out of its sight.
        gc.freeze()
        self.book: RuleBook | None = None  # rebuilt lazily: after a restore, state is all we have
        self.batch.open(runtime_context, "text")

    def _create_analyzer(self):
        # The text stack imports NLTK, scikit-learn's scipy and onnxruntime: not from a Java
        # task thread (udfs/threads.py), so not at the top of this module either.
        from udfs.text import TextAnalyzer

        analyzer = TextAnalyzer.create(self.max_text_chars, self.nltk_data_dir, self.project_model_dir)
        analyzer.nlp.preload()
        return analyzer

    def process_element(self, value: Ingested, ctx: Any) -> Iterator[Any]:
        if self.batch.add(value, ctx):
            yield from self._flush(ctx)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        yield from self._flush(ctx)

    def process_broadcast_element(self, value: Rule, ctx: Any) -> Iterator[Any]:
        state = ctx.get_broadcast_state(RULES_STATE)
        current = state.get(value.rule_id)
        if current is None or current.version <= value.version:
            state.put(value.rule_id, value)
            if self.book is not None:
                self.book.apply(value)  # the index recompiles once, at the next batch
        yield RuleAck(value.rule_id, value.version, self.operator, self.subtask, self.subtasks, RULE_HOLDERS)

    def _rules(self, ctx: Any) -> RuleBook:
        if self.book is None:
            self.book = RuleBook.of(rule for _, rule in ctx.get_broadcast_state(RULES_STATE).items())
        return self.book

    def _flush(self, ctx: Any) -> Iterator[Any]:
        items = self.batch.take(ctx)
        if not items:
            return
        book = self._rules(ctx)
        analysed_at = now_ms()
        findings = self.analyzer.analyse_batch([item.event for item in items], book.index, analysed_at)
        findings = [found if item.part_id == TEXT_PART else replace(found, part_id=item.part_id)
                    for item, found in zip(items, findings)]
        self.batch.record(len(items), analysed_at - min(item.ingested_at for item in items))
        for item, found in zip(items, findings):
            yield Analysed(item.event, found, item.ingested_at, analysed_at)


def ttl(seconds: int) -> StateTtlConfig:
    """Expire state `seconds` after its last write, cleaned up incrementally and in snapshots.

    The cleanup strategies are named explicitly: PyFlink's default adds a RocksDB compaction
    filter whose Python object calls the Java gateway, which exists in a local MiniCluster but
    not inside a cluster's TaskManager (thread mode fails there with FileNotFoundError)."""
    from pyflink.common.time import Time

    return (StateTtlConfig.new_builder(Time.seconds(seconds))
            .disable_cleanup_in_background()
            .cleanup_full_snapshot()
            .cleanup_incrementally(10, False)
            .build())
