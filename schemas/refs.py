"""Reference media that users track (images, audio clips) and their change notices on refs.v1.

A `Reference` describes one stored reference; its media bytes and signature live in Cassandra
(tables of migration V002), never on Kafka. A `RefNotice` says that a reference was added or
removed. Both carry `version`: microseconds since the epoch of the change, also used as the
Cassandra write timestamp, so the tables and the notices agree on which change is newer and a
follower can drop duplicates and late arrivals by comparing versions.

Notices are keyed by ref_id (one partition keeps one reference's notices in order) and are
never null: a removal is a notice with op "remove".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import choices, decode
from schemas.errors import RecordError

KINDS = ("image", "audio")
OPS = ("add", "remove")
SCHEMA_VERSION = 1
# Prefix of content-derived ids, per kind: `img-` + 16 hex digits of the media's sha256.
ID_PREFIXES = {"image": "img", "audio": "aud"}
# The scanned table is split in this many partitions per kind, so that 100,000 signatures of a
# few KB never form one oversized partition. Changing it needs a migration that rewrites rows.
REF_BUCKETS = 16
# Media are stored in chunks of this size (a Cassandra mutation is limited to half a commit-log
# segment: 2.5 MiB on the local stack).
MEDIA_CHUNK_BYTES = 512 * 1024

_REF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_common(ref_id: str, version: int, schema_version: int) -> None:
    if not _REF_ID.fullmatch(ref_id):
        raise RecordError(f"{ref_id!r} is not 1-128 of A-Z a-z 0-9 _ . : - (starting alphanumeric)",
                          "ref_id")
    if version < 1:
        raise RecordError(f"must be >= 1, got {version}", "version")
    if schema_version != SCHEMA_VERSION:
        raise RecordError(f"{schema_version} is not supported (this reader knows {SCHEMA_VERSION})",
                          "schema_version")


@dataclass(frozen=True)
class Reference:
    """One tracked reference, as listed and stored (without its media and signature bytes)."""

    kind: str = field(metadata=choices(*KINDS))
    ref_id: str
    name: str
    owner: str
    media_sha256: str
    mime: str
    size: int  # bytes of media
    signature_version: str
    added_at: int  # epoch ms
    version: int  # epoch µs of the change = Cassandra write timestamp
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check_common(self.ref_id, self.version, self.schema_version)
        if not _SHA256.fullmatch(self.media_sha256):
            raise RecordError("expected 64 lower-case hex digits", "media_sha256")
        if self.size < 0:
            raise RecordError(f"must be >= 0, got {self.size}", "size")


@dataclass(frozen=True)
class RefNotice:
    """A reference was added (or replaced) or removed at `version`."""

    kind: str = field(metadata=choices(*KINDS))
    ref_id: str
    op: str = field(metadata=choices(*OPS))
    version: int
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check_common(self.ref_id, self.version, self.schema_version)


def decode_notice(raw: bytes | str | dict[str, Any]) -> RefNotice:
    """A validated notice; RecordError names the field and the problem."""
    return decode(RefNotice, raw)


def decode_reference(raw: bytes | str | dict[str, Any]) -> Reference:
    return decode(Reference, raw)


def ref_id_for(kind: str, media_sha256: str) -> str:
    """The id of a reference derived from its content, so adding the same bytes twice is one ref."""
    if kind not in ID_PREFIXES:
        raise RecordError(f"{kind!r} is not one of {sorted(ID_PREFIXES)}", "kind")
    return f"{ID_PREFIXES[kind]}-{media_sha256[:16]}"


def bucket_of(ref_id: str) -> int:
    """The partition bucket of a reference in refs_by_kind (stable across processes)."""
    return int.from_bytes(hashlib.sha256(ref_id.encode()).digest()[:4], "big") % REF_BUCKETS


# -- CQL (tables of schemas/cql/V002__refs.cql) ------------------------------------------------
# Every write carries `USING TIMESTAMP` = the change's version, so Cassandra's last-write-wins
# order is the notices' order, whatever order the writes arrive in.

_REF_COLUMNS = ("kind, bucket, ref_id, name, owner, media_sha256, mime, size, signature, "
                "signature_version, added_at, version")
CQL_PUT_REF = (f"INSERT INTO {{keyspace}}.refs_by_kind ({_REF_COLUMNS}) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?")
CQL_PUT_CHUNK = ("INSERT INTO {keyspace}.ref_media (kind, ref_id, chunk, data) VALUES (?, ?, ?, ?) "
                 "USING TIMESTAMP ?")
CQL_GET_REF = (f"SELECT {_REF_COLUMNS} FROM {{keyspace}}.refs_by_kind "
               "WHERE kind = ? AND bucket = ? AND ref_id = ?")
CQL_SCAN_REFS = f"SELECT {_REF_COLUMNS} FROM {{keyspace}}.refs_by_kind WHERE kind = ? AND bucket = ?"
CQL_GET_MEDIA = "SELECT data FROM {keyspace}.ref_media WHERE kind = ? AND ref_id = ?"
CQL_DELETE_REF = ("DELETE FROM {keyspace}.refs_by_kind USING TIMESTAMP ? "
                  "WHERE kind = ? AND bucket = ? AND ref_id = ?")
CQL_DELETE_MEDIA = "DELETE FROM {keyspace}.ref_media USING TIMESTAMP ? WHERE kind = ? AND ref_id = ?"
# Only the two signature cells; a later removal or re-add (higher timestamp) still wins.
CQL_PUT_SIGNATURE = ("UPDATE {keyspace}.refs_by_kind USING TIMESTAMP ? "
                     "SET signature = ?, signature_version = ? "
                     "WHERE kind = ? AND bucket = ? AND ref_id = ?")
