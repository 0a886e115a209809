"""The local stack manager against real servers: up, status, health, topics, migrations, down."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from connectors import admin
from tests.integration.conftest import isolated_settings
from trackius import stack, stack_kafka
from trackius.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka_admin(stack_settings: Settings) -> Iterator[KafkaAdminClient]:
    """An admin client on the session's broker."""
    client = admin.kafka_admin(stack_settings)
    yield client
    client.close()


def _topic_configs(client: KafkaAdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    described = client.describe_configs([resource], config_filter="all")["topic"][topic]
    return {key: entry["value"] for key, entry in described.items()}


def test_status_reports_both_servers_running_and_healthy(stack_settings: Settings) -> None:
    """After `up`, status lists Kafka then Cassandra, each running with a pid and healthy."""
    report = stack.status(stack_settings)
    assert [s.name for s in report] == ["kafka", "cassandra"]
    assert all(s.running and s.healthy and isinstance(s.pid, int) for s in report), report
    assert report[0].address == stack_settings.kafka_bootstrap
    assert report[1].address == f"127.0.0.1:{stack_settings.cassandra_port}"
    assert "kafka" in stack.format_status(report) and "healthy" in stack.format_status(report)


def test_up_again_keeps_the_running_servers(stack_settings: Settings) -> None:
    """A second `up` starts nothing: same pids, and it says both were already running."""
    before = [s.pid for s in stack.status(stack_settings)]
    messages: list[str] = []
    stack.up(stack_settings, log=messages.append)
    assert [s.pid for s in stack.status(stack_settings)] == before
    assert sum("already running" in m for m in messages) == 2, messages


def test_every_topic_exists_with_its_partitions(
    stack_settings: Settings, kafka_admin: KafkaAdminClient
) -> None:
    """Each configured topic exists with one replica and the partitions its spec asks for."""
    described = {t["name"]: t for t in kafka_admin.describe_topics()}
    for spec in admin.topic_specs(stack_settings):
        partitions = described[spec.name]["partitions"]
        assert len(partitions) == spec.partitions, spec.name
        assert all(p["replica_nodes"] == [1] for p in partitions), spec.name
    assert len(described[stack_settings.topics.alerts]["partitions"]) == 1


def test_rules_topic_is_compacted_and_limits_apply(
    stack_settings: Settings, kafka_admin: KafkaAdminClient
) -> None:
    """rules.v1 is compacted, other topics delete, and all take max_message_bytes records."""
    limit = str(stack_settings.max_message_bytes)
    rules = _topic_configs(kafka_admin, stack_settings.topics.rules)
    events = _topic_configs(kafka_admin, stack_settings.topics.content_events)
    assert rules["cleanup.policy"] == "compact"
    assert events["cleanup.policy"] == "delete"
    assert rules["max.message.bytes"] == events["max.message.bytes"] == limit


def test_broker_is_configured_for_the_local_stack(
    stack_settings: Settings, kafka_admin: KafkaAdminClient
) -> None:
    """The broker refuses auto-created topics and accepts records up to max_message_bytes."""
    resource = ConfigResource(ConfigResourceType.BROKER, "1")
    described = kafka_admin.describe_configs([resource], config_filter="all")["broker"]["1"]
    configs = {key: entry["value"] for key, entry in described.items()}
    assert configs["auto.create.topics.enable"] == "false"
    assert configs["message.max.bytes"] == str(stack_settings.max_message_bytes)
    assert configs["group.initial.rebalance.delay.ms"] == "0"


def test_ensure_topics_again_creates_nothing(stack_settings: Settings) -> None:
    """Topic creation is idempotent."""
    assert admin.ensure_topics(stack_settings) == []


def test_migrations_are_recorded_with_checksums(
    stack_settings: Settings, cql_session: Session
) -> None:
    """Each shipped migration is recorded with the sha256 of its file, and its tables exist."""
    rows = {r.version: r for r in cql_session.execute("SELECT * FROM schema_migrations")}
    for migration in admin.discover():
        assert rows[migration.version].checksum == migration.checksum
        assert rows[migration.version].applied_at is not None
    tables = cql_session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
        (stack_settings.cassandra_keyspace,),
    )
    assert {"alerts_by_rule", "findings_by_content"} <= {r.table_name for r in tables}


def test_second_migrate_applies_nothing(stack_settings: Settings) -> None:
    """Migrations already recorded are not applied again."""
    assert admin.migrate(stack_settings) == []


def test_new_migration_applies_once_and_edits_are_refused(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """A new file applies once in order; editing an applied file raises naming that file."""
    settings = stack_settings.replace(cassandra_keyspace="trackius_migrate_test")
    shutil.copytree(admin.MIGRATIONS_DIR, tmp_path, dirs_exist_ok=True)
    extra = tmp_path / "V900__extra.cql"
    extra.write_text("CREATE TABLE IF NOT EXISTS {keyspace}.extra (k int PRIMARY KEY);\n")
    versions = [m.version for m in admin.discover(tmp_path)]
    assert admin.migrate(settings, directory=tmp_path) == versions
    assert admin.migrate(settings, directory=tmp_path) == []
    extra.write_text(extra.read_text() + "-- edited\n")
    with pytest.raises(admin.MigrationError, match=re.escape("V900__extra.cql changed")):
        admin.migrate(settings, directory=tmp_path)


def test_failed_start_raises_with_the_log_tail(tmp_path: Path) -> None:
    """Kafka on a taken port dies at start-up; StackError carries the cause from its log."""
    settings = isolated_settings(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    settings = settings.replace(kafka_bootstrap=f"127.0.0.1:{taken.getsockname()[1]}")
    try:
        with pytest.raises(stack.StackError) as failure:
            stack.start(settings, "kafka")
    finally:
        taken.close()
        stack.down(settings)
    message = str(failure.value)
    assert str(stack.log_path(settings, stack_kafka)) in message
    assert "Address already in use" in message
    assert not stack.status(settings)[0].running


def test_down_stops_a_server_and_is_idempotent(tmp_path: Path) -> None:
    """`down` stops a started server, removes its pid file, and a second `down` is a no-op."""
    settings = isolated_settings(tmp_path)
    stack.start(settings, "kafka")
    pid = stack.status(settings)[0].pid
    assert pid is not None
    stack.down(settings)
    stack.down(settings)
    assert not stack.status(settings)[0].running
    assert not (tmp_path / "kafka" / "kafka.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stale_pid_file_counts_as_not_running(tmp_path: Path) -> None:
    """A pid file whose process is gone reads as stopped, and `down` just removes it."""
    settings = isolated_settings(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: nothing runs under this pid any more
    pid_file = tmp_path / "kafka" / "kafka.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{gone.pid}\n")
    kafka = stack.status(settings)[0]
    assert (kafka.running, kafka.pid, kafka.healthy) == (False, None, False)
    assert "stale" in kafka.detail
    stack.down(settings)
    assert not pid_file.exists()
