"""Cassandra sink: idempotent upserts with prepared statements, written in awaited batches.

There is no Flink 2.x Cassandra connector, and Python operators have no checkpoint hook, so the
adapter keeps rows in keyed state until a batch is flushed and waits for every write of the
batch before dropping them: a checkpoint can never cover a row that is still in flight.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pyflink.datastream import KeyedProcessFunction, ProcessFunction, RuntimeContext

from schemas.alert import CQL_UPSERT_ALERT, Alert, alert_row
from schemas.codec import decode, decode_utf8
from schemas.deadletter import dead_letter
from schemas.errors import RecordError
from schemas.findings import CQL_UPSERT_FINDINGS, TextFindings, findings_row
from schemas.fused import FusedAnalysis, fused_row
from schemas.media import MediaFindings, media_row
from schemas.pipeline import StoredRow
from trackius.settings import Settings
from udfs.batching import MicroBatch
from udfs.operators import DEAD_LETTERS, now_ms, share_the_interpreter_fairly

STATEMENTS = {"alert": CQL_UPSERT_ALERT, "findings": CQL_UPSERT_FINDINGS}


class ToStoredRow(ProcessFunction):
    """A record's JSON, as read back from Kafka -> the upsert that stores it | dead letter.

    The store job must not fail on data either: anything on the topic that is not a valid
    record of its kind (another producer, an old schema) becomes a dead letter."""

    def __init__(self, statement: str, source_topic: str) -> None:
        self.statement = statement
        self.source_topic = source_topic

    def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
        try:
            text = decode_utf8(bytes(value))
            # validated by decoding, stored as the JSON it arrived as (no second encoding)
            yield StoredRow(self.statement, row_of(self.statement, text))
        except RecordError as exc:
            yield DEAD_LETTERS, dead_letter(bytes(value), "store", str(exc), self.source_topic, now_ms())


def row_of(statement: str, text: str) -> tuple:
    """The upsert values of one record's JSON. findings.v1 carries text findings, media findings
    (a record with a `kind`) and fused analyses (a record with `complete`)."""
    if statement == "alert":
        return alert_row(decode(Alert, text), text)
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"malformed JSON: {exc}") from exc
    if isinstance(raw, dict) and "kind" in raw:
        return media_row(decode(MediaFindings, raw), text)
    if isinstance(raw, dict) and "complete" in raw:
        return fused_row(decode(FusedAnalysis, raw), text)
    return findings_row(decode(TextFindings, raw), text)


class CassandraWriter:
    def __init__(self, session: Any, keyspace: str, concurrency: int = 64) -> None:
        self.session = session
        self.concurrency = concurrency
        self.prepared = {
            name: session.prepare(cql.format(keyspace=keyspace)) for name, cql in STATEMENTS.items()
        }

    def write(self, rows: Sequence[StoredRow]) -> None:
        """Upsert every row concurrently; returns once all are acknowledged, raises on failure."""
        from cassandra.concurrent import execute_concurrent

        statements = [(self.prepared[row.statement], row.values) for row in rows]
        execute_concurrent(self.session, statements, concurrency=self.concurrency,
                           raise_on_first_error=True)


class WriteCassandra(KeyedProcessFunction):
    """Keyed by shard: StoredRow -> (nothing); rows leave state only once Cassandra has them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.batch = MicroBatch(settings.batch_size, settings.batch_max_wait_ms)

    def open(self, runtime_context: RuntimeContext) -> None:
        from connectors.admin import cassandra_session

        # The driver's I/O thread needs the GIL for every response; with the default 5 ms switch
        # interval it queues behind the other operators of this JVM (measured: ~2 ms per row).
        share_the_interpreter_fairly()
        self.session = cassandra_session(self.settings)
        self.writer = CassandraWriter(self.session, self.settings.cassandra_keyspace)
        self.batch.open(runtime_context, "cassandra")

    def close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.cluster.shutdown()

    def process_element(self, value: StoredRow, ctx: KeyedProcessFunction.Context) -> None:
        if self.batch.add(value, ctx):
            self._flush(ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> None:
        self._flush(ctx)

    def _flush(self, ctx: Any) -> None:
        rows = self.batch.take(ctx)
        if rows:
            started = ctx.timer_service().current_processing_time()
            self.writer.write(rows)
            self.batch.record(len(rows), ctx.timer_service().current_processing_time() - started)
