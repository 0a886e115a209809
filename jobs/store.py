"""The store job: what the analyze job published, upserted into Cassandra.

Inputs   alerts.v1, findings.v1 (JSON), from the group's committed offsets
Keys     shard of the row's partition key (one micro-batch buffer per shard)
State    rows waiting for their batch (list state + timer), Kafka offsets
Outputs  content.deadletter.v1 for records that do not decode;
         Cassandra alerts_by_rule and findings_by_content: idempotent upserts with prepared
         statements; a row leaves state only after Cassandra acknowledged its whole batch, so a
         checkpoint never covers a write still in flight.

A job of its own (own JVM, own Python interpreter) so that Cassandra's latency and the driver's
Python work never delay an alert: in thread mode all Python functions of one JVM share one GIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyflink.common import Types

from connectors.cassandra import ToStoredRow, WriteCassandra
from connectors.kafka import json_sink, stored_source
from jobs.environment import (
    execution_environment,
    kafka_stream,
    named,
    restore_point,
    shard_of,
    to_json,
)
from schemas.flink_types import record_type
from trackius.settings import Settings
from udfs.operators import DEAD_LETTERS


def store_settings(settings: Settings) -> Settings:
    """The store job's own name (checkpoints, consumer group) and batch bounds."""
    return settings.replace(job_name=f"{settings.job_name}-store",
                            batch_size=settings.store_batch_size,
                            batch_max_wait_ms=settings.store_batch_max_wait_ms)


@dataclass
class Outputs:
    rows: Any  # StoredRow, keyed by the shard of its partition key
    dead_letters: Any  # DeadLetter JSON


def topology(alerts: Any, findings: Any, settings: Settings) -> Outputs:
    """Alert and findings JSON in; rows to upsert and dead letters out (no connectors here)."""
    alert_rows = named(alerts.process(ToStoredRow("alert", settings.topics.alerts), record_type()), "AlertRows")
    findings_rows = named(findings.process(ToStoredRow("findings", settings.topics.findings), record_type()),
                          "FindingsRows")
    # -> StoredRow, and DeadLetter on the side
    shards = max(1, settings.parallelism)
    return Outputs(
        rows=alert_rows.union(findings_rows).key_by(lambda row: shard_of(row.values[0], shards), Types.INT()),
        dead_letters=to_json(alert_rows.get_side_output(DEAD_LETTERS).union(
            findings_rows.get_side_output(DEAD_LETTERS)), "EncodeDeadLetters"),
    )


def main(argv: list[str] | None = None) -> None:
    settings = store_settings(Settings.from_env())
    env = execution_environment(settings, restore_point(settings, argv))
    topics = settings.topics
    out = topology(kafka_stream(env, stored_source(settings, topics.alerts), "stored-alerts"),
                   kafka_stream(env, stored_source(settings, topics.findings), "stored-findings"), settings)
    named(out.rows.process(WriteCassandra(settings)), "WriteCassandra")
    out.dead_letters.sink_to(json_sink(settings, topics.deadletter)).uid("dead-letters-sink")
    env.execute(settings.job_name)


if __name__ == "__main__":
    main()
