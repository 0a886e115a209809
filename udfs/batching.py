"""Micro-batches in keyed Flink state, flushed when full or when the oldest item is due.

Vectorised UDFs exist only in the Table API, so DataStream operators batch themselves. Items wait
in ListState (not in a Python list) so a checkpoint taken while they wait still holds them; a
processing-time timer bounds how long the first item of a batch can wait.
"""

from __future__ import annotations

from typing import Any

from pyflink.datastream import RuntimeContext
from pyflink.datastream.state import ListStateDescriptor

from schemas.flink_types import record_type


class MicroBatch:
    def __init__(self, size: int, max_wait_ms: int) -> None:
        self.size = size
        self.max_wait_ms = max_wait_ms

    def open(self, runtime_context: RuntimeContext, name: str) -> None:
        self.items = runtime_context.get_list_state(ListStateDescriptor(f"{name}-batch", record_type()))
        # Items per key since the last flush. Kept in memory: one state call per item less, and
        # after a restore the restored timer still flushes whatever the restored list holds.
        self.counts: dict[Any, int] = {}
        metrics = runtime_context.get_metrics_group().add_group("batch", name)
        self.sizes = metrics.distribution("size")
        self.waits = metrics.distribution("wait_ms")
        self.flushes = metrics.counter("flushes")

    def add(self, item: Any, ctx: Any) -> bool:
        """Buffer one item; True when the batch is full and should be flushed now."""
        key = ctx.get_current_key()
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        self.items.add(item)
        if count == 1:
            timers = ctx.timer_service()
            timers.register_processing_time_timer(timers.current_processing_time() + self.max_wait_ms)
        return count >= self.size

    def take(self, ctx: Any) -> list[Any]:
        self.counts.pop(ctx.get_current_key(), None)
        items = list(self.items.get() or ())
        if items:
            self.items.clear()
        return items

    def record(self, size: int, oldest_wait_ms: int) -> None:
        """Metrics of a flushed batch: its size and how long its oldest item waited."""
        self.flushes.inc()
        self.sizes.update(size)
        self.waits.update(max(0, oldest_wait_ms))
