"""Kafka builders: Flink sources and sinks for the jobs, kafka-python clients for the CLI and tools.

One message-size limit (settings.max_message_bytes) is applied to topics, producers and
consumers alike, so anything a producer was allowed to write can be read back.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from trackius.settings import Settings


def content_source(settings: Settings) -> Any:
    """Content events as raw bytes; resumes from the group's committed offsets (or the start)."""
    return _source(settings, settings.topics.content_events, settings.job_name, committed=True)


def rules_source(settings: Settings) -> Any:
    """Every rules record from the start of the compacted topic: the full set of rules."""
    return _source(settings, settings.topics.rules, f"{settings.job_name}-rules", committed=False)


def refs_source(settings: Settings) -> Any:
    """Reference change notices. Operators load every reference from Cassandra when they open, so
    the notices only have to cover what changed since; a first start reads them all (cheap and
    idempotent) rather than risk missing a reference added while the job was starting."""
    return _source(settings, settings.topics.refs, f"{settings.job_name}-refs", committed=True)


def stored_source(settings: Settings, topic: str) -> Any:
    """Records the job itself produced, read back for Cassandra (resumes from committed offsets)."""
    return _source(settings, topic, settings.job_name, committed=True)


def _source(settings: Settings, topic: str, group_id: str, committed: bool) -> Any:
    from pyflink.common.serialization import ByteArraySchema
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetResetStrategy,
        KafkaOffsetsInitializer,
        KafkaSource,
    )

    offsets = (
        KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        if committed
        else KafkaOffsetsInitializer.earliest()
    )
    return (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_topics(topic)
        .set_group_id(group_id)
        .set_starting_offsets(offsets)
        .set_value_only_deserializer(ByteArraySchema())
        .set_properties(_consumer_limits(settings))
        .build()
    )


def _consumer_limits(settings: Settings) -> dict[str, str]:
    limit = str(settings.max_message_bytes)
    return {
        "max.partition.fetch.bytes": limit,
        "fetch.max.bytes": limit,
        # Fetches return as soon as one record is there; the wait only bounds empty polls.
        "fetch.max.wait.ms": "20",
        "partition.discovery.interval.ms": "10000",
    }


def json_sink(settings: Settings, topic: str) -> Any:
    """At-least-once JSON sink: records carry deterministic ids, so consumers drop duplicates."""
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

    serializer = (
        KafkaRecordSerializationSchema.builder()
        .set_topic(topic)
        .set_value_serialization_schema(SimpleStringSchema())
        .build()
    )
    return (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_record_serializer(serializer)
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .set_property("linger.ms", "0")
        .set_property("max.request.size", str(settings.max_message_bytes))
        .build()
    )


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    options = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "max_request_size": settings.max_message_bytes,
        "linger_ms": 0,
        "acks": 1,
    }
    options.update(overrides)
    return KafkaProducer(**options)


def consumer(settings: Settings, *topics: str, **overrides: Any) -> KafkaConsumer:
    options = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "max_partition_fetch_bytes": settings.max_message_bytes,
        "fetch_max_bytes": settings.max_message_bytes,
        "fetch_max_wait_ms": 10,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
    }
    options.update(overrides)
    return KafkaConsumer(*topics, **options)
