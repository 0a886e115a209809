"""The server-free parts of the CQL migrations: discovery, templating, splitting, checksums."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from connectors.admin import (
    LOCAL_REPLICATION,
    MIGRATIONS_DIR,
    Migration,
    MigrationError,
    check_applied,
    discover,
    render,
    split_statements,
    topic_specs,
)
from trackius.settings import Settings


def _write(directory: Path, name: str, text: str = "SELECT 1;\n") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_discover_orders_by_version_number_not_name(tmp_path: Path) -> None:
    """V010 comes after V002 even though it sorts before it as text with fewer digits."""
    _write(tmp_path, "V010__later.cql")
    _write(tmp_path, "V2__earlier.cql")
    assert [(m.version, m.name) for m in discover(tmp_path)] == [(2, "earlier"), (10, "later")]


def test_discover_checksums_the_file_bytes(tmp_path: Path) -> None:
    """The recorded checksum is the sha256 of the file as written, before templating."""
    path = _write(tmp_path, "V001__a.cql", "CREATE KEYSPACE {keyspace};\n")
    (migration,) = discover(tmp_path)
    assert migration.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
    assert migration.path == path


def test_discover_rejects_a_misnamed_file(tmp_path: Path) -> None:
    """A .cql file that does not follow V<NNN>__<name>.cql is an error, not silently skipped."""
    _write(tmp_path, "001_missing_v.cql")
    with pytest.raises(MigrationError, match=re.escape("001_missing_v.cql")):
        discover(tmp_path)


def test_discover_rejects_a_duplicate_version(tmp_path: Path) -> None:
    """Two files with the same version number cannot both be applied in a defined order."""
    _write(tmp_path, "V001__a.cql")
    _write(tmp_path, "V1__b.cql")
    with pytest.raises(MigrationError, match=re.escape("share version 1")):
        discover(tmp_path)


def test_repository_migrations_are_discoverable() -> None:
    """The shipped schemas/cql directory parses and starts at version 1."""
    migrations = discover(MIGRATIONS_DIR)
    assert migrations[0].version == 1
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})


def test_render_fills_placeholders_and_keeps_cql_maps() -> None:
    """Only {keyspace} and {replication} are replaced; other braces are CQL and stay."""
    text = "CREATE KEYSPACE {keyspace} WITH replication = {replication} AND x = {'a': 1};"
    assert render(text, "ks") == (
        f"CREATE KEYSPACE ks WITH replication = {LOCAL_REPLICATION} AND x = {{'a': 1}};"
    )


def test_split_statements_drops_comments_and_splits_at_line_end_semicolons() -> None:
    """Statements span lines, end at a `;` that ends a line, and comment lines vanish."""
    text = """-- header comment
CREATE TABLE t (
  -- a column comment
  a int PRIMARY KEY, b text
);

INSERT INTO t (a, b) VALUES (1, 'x;y');
  -- trailing comment
"""
    assert split_statements(text) == [
        "CREATE TABLE t (\n  a int PRIMARY KEY, b text\n)",
        "INSERT INTO t (a, b) VALUES (1, 'x;y')",
    ]


def test_split_statements_keeps_a_last_statement_without_semicolon() -> None:
    """A file whose last statement lacks its `;` still applies that statement."""
    assert split_statements("SELECT 1;\nSELECT 2\n") == ["SELECT 1", "SELECT 2"]


def test_split_statements_of_the_first_migration() -> None:
    """V001 yields a keyspace and two tables, each statement complete."""
    (first, *_) = discover(MIGRATIONS_DIR)
    statements = split_statements(render(first.path.read_text(), "ks"))
    assert [s.split("(")[0].split()[:3] for s in statements] == [
        ["CREATE", "KEYSPACE", "IF"],
        ["CREATE", "TABLE", "IF"],
        ["CREATE", "TABLE", "IF"],
    ]
    assert not any("{keyspace}" in s or "{replication}" in s for s in statements)


def _migration(version: int, checksum: str) -> Migration:
    return Migration(version, f"m{version}", Path(f"V{version:03d}__m{version}.cql"), checksum)


def test_check_applied_returns_only_unrecorded_migrations() -> None:
    """Recorded versions with matching checksums are skipped; new ones are pending, in order."""
    migrations = [_migration(1, "a"), _migration(2, "b"), _migration(3, "c")]
    assert check_applied(migrations, {1: "a"}) == migrations[1:]
    assert check_applied(migrations, {1: "a", 2: "b", 3: "c"}) == []


def test_check_applied_names_the_edited_file() -> None:
    """A file edited after it was applied is an error naming that file."""
    with pytest.raises(MigrationError, match=re.escape("V002__m2.cql changed")):
        check_applied([_migration(1, "a"), _migration(2, "b")], {1: "a", 2: "old"})


def test_topic_specs_single_partition_for_ordered_topics() -> None:
    """Rules, rule acks and alerts get one partition; the rest the configured count."""
    settings = Settings(kafka_partitions=3)
    topics = settings.topics
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert set(specs) == {
        topics.content_events,
        topics.deadletter,
        topics.rules,
        topics.rule_acks,
        topics.refs,
        topics.findings,
        topics.alerts,
        topics.deliveries,
    }
    assert {n for n, s in specs.items() if s.partitions == 1} == {
        topics.rules,
        topics.rule_acks,
        topics.alerts,
    }
    assert specs[topics.content_events].partitions == 3


def test_topic_specs_compacts_only_rules() -> None:
    """Only the rules topic is compacted; every topic carries the message size limit."""
    settings = Settings()
    specs = topic_specs(settings)
    assert [s.name for s in specs if "cleanup.policy" in s.configs] == [settings.topics.rules]
    assert {s.configs["max.message.bytes"] for s in specs} == {str(settings.max_message_bytes)}
