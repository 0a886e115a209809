"""Administration of the stack's data stores: Kafka topics and versioned CQL migrations.

Migrations are files `schemas/cql/V<NNN>__<name>.cql`, applied in version order, each once, and
recorded in `<keyspace>.schema_migrations` with the sha256 of the file; editing an applied file is
an error (write a new migration instead). The pure parts (discovery, templating, splitting) take
no server and are unit-tested; `migrate` is the thin part that talks to Cassandra.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy
from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

import schemas
from trackius.settings import Settings

MIGRATIONS_DIR = Path(schemas.__file__).resolve().parent / "cql"
# Local single-node stack; a real cluster would use NetworkTopologyStrategy with RF 3.
LOCAL_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
_FILE_NAME = re.compile(r"^V(?P<version>\d+)__(?P<name>\w+)\.cql$")
_PLACEHOLDER = re.compile(r"\{(keyspace|replication)\}")
_DDL_TIMEOUT_S = 60.0


class MigrationError(RuntimeError):
    """A migration file is malformed, duplicated, or was edited after it was applied."""


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name, path and the sha256 of its bytes."""

    version: int
    name: str
    path: Path
    checksum: str


# -- Kafka -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created: partitions and topic configs (one replica on the local stack)."""

    name: str
    partitions: int
    configs: dict[str, str]
    replication_factor: int = 1


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic in settings with its partitions and configs."""
    topics = settings.topics
    # Rules, their acks and alerts are read in total order: one partition each.
    single = {topics.rules, topics.rule_acks, topics.alerts}
    specs = []
    for name in asdict(topics).values():
        configs = {"max.message.bytes": str(settings.max_message_bytes)}
        if name == topics.rules:
            configs["cleanup.policy"] = "compact"  # the latest version of each rule, forever
        partitions = 1 if name in single else settings.kafka_partitions
        specs.append(TopicSpec(name, partitions, configs))
    return specs


def kafka_admin(settings: Settings, timeout_ms: int = 10_000) -> KafkaAdminClient:
    """An admin client for the configured bootstrap servers; the caller closes it."""
    return KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="trackius-admin",
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
    )


def ensure_topics(settings: Settings) -> list[str]:
    """Create the topics of settings that do not exist yet; returns the names created now.

    Existing topics are left as they are, even if their partitions or configs differ.
    """
    admin = kafka_admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = {
            spec.name: {
                "num_partitions": spec.partitions,
                "configs": spec.configs,
                "replication_factor": spec.replication_factor,
            }
            for spec in topic_specs(settings)
            if spec.name not in existing
        }
        if not missing:
            return []
        # Another process may create one concurrently: the goal state is reached all the same.
        with suppress(TopicAlreadyExistsError):
            admin.create_topics(missing, wait_for_metadata=True)
        return sorted(missing)
    finally:
        admin.close()


# -- Cassandra -------------------------------------------------------------------------------


def cassandra_cluster(settings: Settings, timeout: float = 30.0) -> Cluster:
    """A driver Cluster for settings; the DC-aware policy keeps the driver from warning."""
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"),
        request_timeout=timeout,
    )
    return Cluster(
        [settings.cassandra_host],
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        # Cassandra 5.0 speaks protocol v5; naming it skips two downgrade round trips (and warnings).
        protocol_version=5,
    )


def cassandra_session(settings: Settings, keyspace: bool | str = True) -> Session:
    """A connected Session, in the settings' keyspace (True), none (False) or the named one.

    The caller owns it: `session.cluster.shutdown()` closes its connections and threads.
    """
    name = settings.cassandra_keyspace if keyspace is True else keyspace or None
    cluster = cassandra_cluster(settings)
    try:
        return cluster.connect(name)
    except Exception:
        cluster.shutdown()  # do not leak the driver's threads on a failed connect
        raise


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in directory, ordered by version; malformed or duplicate names raise."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.cql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: name must look like V001__what_it_does.cql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"{path} and {found[version].path} share version {version}")
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found[version] = Migration(version, match["name"], path, checksum)
    return [found[v] for v in sorted(found)]


def render(text: str, keyspace: str, replication: str = LOCAL_REPLICATION) -> str:
    """Fill the {keyspace} and {replication} placeholders, leaving other braces (CQL maps)."""
    values = {"keyspace": keyspace, "replication": replication}
    return _PLACEHOLDER.sub(lambda m: values[m[1]], text)


def split_statements(text: str) -> list[str]:
    """CQL statements of a file: whole-line `--` comments dropped, split at `;` at line ends."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().removesuffix(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)  # a last statement without its `;`
    return [s for s in statements if s]


_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations (
  version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"""


def check_applied(migrations: Iterable[Migration], applied: dict[int, str]) -> list[Migration]:
    """The migrations still to apply; raises if an applied one's file has changed since."""
    pending = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            pending.append(migration)
        elif recorded != migration.checksum:
            raise MigrationError(
                f"{migration.path} changed after it was applied (sha256 {recorded} recorded, "
                f"{migration.checksum} now); add a new migration instead of editing it"
            )
    return pending


def migrate(
    settings: Settings, *, directory: Path = MIGRATIONS_DIR, replication: str = LOCAL_REPLICATION
) -> list[int]:
    """Apply pending migrations in version order; returns the versions applied by this call."""
    keyspace = settings.cassandra_keyspace
    migrations = discover(directory)  # fail on a bad file before touching the database
    session = cassandra_session(settings, keyspace=False)
    try:
        # The bookkeeping table lives in the keyspace that V001 creates: create both up front.
        session.execute(
            render(
                "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}",
                keyspace,
                replication,
            ),
            timeout=_DDL_TIMEOUT_S,
        )
        session.execute(render(_MIGRATIONS_TABLE, keyspace), timeout=_DDL_TIMEOUT_S)
        rows = session.execute(f"SELECT version, checksum FROM {keyspace}.schema_migrations")
        pending = check_applied(migrations, {r.version: r.checksum for r in rows})
        for migration in pending:
            _apply(session, migration, keyspace, replication)
        return [m.version for m in pending]
    finally:
        session.cluster.shutdown()


def _apply(session: Session, migration: Migration, keyspace: str, replication: str) -> None:
    text = render(migration.path.read_text(), keyspace, replication)
    for statement in split_statements(text):
        session.execute(statement, timeout=_DDL_TIMEOUT_S)
    # Recorded last: a migration that fails half-way is retried whole (its DDL uses IF NOT EXISTS).
    session.execute(
        f"INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) "
        "VALUES (%s, %s, %s, toTimestamp(now()))",
        (migration.version, migration.name, migration.checksum),
    )
