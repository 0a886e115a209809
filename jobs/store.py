"""The store job: what the analyze job published, upserted into Cassandra.

Inputs   alerts.v1, findings.v1 (JSON), from the group's committed offsets
Keys     shard of the row's partition key (one micro-batch buffer per shard)
State    rows waiting for their batch (list state + timer), Kafka offsets
Outputs  Cassandra alerts_by_rule and findings_by_content: idempotent upserts with prepared
         statements; a row leaves state only after Cassandra acknowledged its whole batch, so a
         checkpoint never covers a write still in flight.

A job of its own (own JVM, own Python interpreter) so that Cassandra's latency and the driver's
Python work never delay an alert: in thread mode all Python functions of one JVM share one GIL.
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Types

from connectors.cassandra import WriteCassandra, stored_row
from connectors.kafka import stored_source
from jobs.environment import execution_environment, kafka_stream, named, restore_point, shard_of
from schemas.flink_types import record_type
from trackius.settings import Settings


def store_settings(settings: Settings) -> Settings:
    """The store job's own name (checkpoints, consumer group) and MiniCluster REST port."""
    return settings.replace(job_name=f"{settings.job_name}-store", flink_rest_port=settings.store_rest_port)


def topology(alerts: Any, findings: Any, settings: Settings) -> Any:
    """Alert and findings JSON in; StoredRow out, keyed by the shard of its partition key."""
    rows = named(alerts.map(stored_row("alert"), record_type()), "AlertRows").union(
        named(findings.map(stored_row("findings"), record_type()), "FindingsRows"))
    # -> StoredRow
    return rows.key_by(lambda row: shard_of(row.values[0], max(1, settings.parallelism)), Types.INT())


def main(argv: list[str] | None = None) -> None:
    settings = store_settings(Settings.from_env())
    env = execution_environment(settings, restore_point(settings, argv))
    topics = settings.topics
    rows = topology(kafka_stream(env, stored_source(settings, topics.alerts), "stored-alerts"),
                    kafka_stream(env, stored_source(settings, topics.findings), "stored-findings"), settings)
    named(rows.process(WriteCassandra(settings)), "WriteCassandra")
    env.execute(settings.job_name)


if __name__ == "__main__":
    main()
