"""Fixtures for tests against the real local stack: one Kafka and one Cassandra per session.

The session's stack runs on free loopback ports in a temporary state directory, so it never
touches a demo stack (`trackius up`) that may be running at the same time. Only the jars are
shared: they come from the configured jars directory (scripts/setup.sh fills it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from connectors.admin import cassandra_session
from trackius import stack
from trackius.settings import Settings, free_ports

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, so `-m "not integration"` can deselect them."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def isolated_settings(state_dir: Path) -> Settings:
    """Settings for a stack of its own: fresh ports and state, the configured jars."""
    kafka, controller, cql, storage = free_ports(4)
    return Settings.from_env().replace(
        state_dir=state_dir,
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        kafka_controller_port=controller,
        cassandra_host="127.0.0.1",
        cassandra_port=cql,
        cassandra_storage_port=storage,
    )


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A running stack (topics created, migrations applied) for the whole test session."""
    settings = isolated_settings(tmp_path_factory.mktemp("stack"))
    jars = settings.jars_dir
    if not any(jars.glob("kafka/*.jar")) or not any(jars.glob("cassandra/*.jar")):
        pytest.fail(f"no server jars under {jars}: run scripts/setup.sh first")
    try:
        stack.up(settings)
        yield settings
    finally:
        stack.down(settings)  # also after a failed `up`: a half-started stack must not linger


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_settings: Settings) -> str:
    """The bootstrap address of the session's broker."""
    return stack_settings.kafka_bootstrap


@pytest.fixture(scope="session")
def cql_session(stack_settings: Settings) -> Iterator[Session]:
    """A driver session in the session stack's keyspace, shared by the tests that read tables."""
    session = cassandra_session(stack_settings)
    yield session
    session.cluster.shutdown()
