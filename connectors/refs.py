"""Reference media in Cassandra, their change notices on refs.v1, and the operators' follower.

Writers (the CLI) store a reference first and publish its notice second, both at the same
`version` (the Cassandra write timestamp): an operator that sees a notice finds the row, and one
that reads a row knows which notices are older. Operators build their in-memory index with
`RefFollower.load_all()` when they open and keep it current with `RefFollower.apply(notice)`
for every notice the job broadcasts to them; duplicates and late notices are dropped by version.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Self

from schemas.codec import encode
from schemas.errors import ConfigError, MediaError
from schemas.refs import (
    CQL_DELETE_MEDIA,
    CQL_DELETE_REF,
    CQL_GET_MEDIA,
    CQL_GET_REF,
    CQL_PUT_CHUNK,
    CQL_PUT_REF,
    CQL_PUT_SIGNATURE,
    CQL_SCAN_REFS,
    MEDIA_CHUNK_BYTES,
    REF_BUCKETS,
    Reference,
    RefNotice,
    bucket_of,
)
from trackius.settings import Settings

log = logging.getLogger(__name__)

# signer(kind, media) -> (signature bytes, signature_version); raises MediaError on bad media.
Signer = Callable[[str, bytes], tuple[bytes, str]]
_EPOCH = datetime(1970, 1, 1)  # the driver returns timestamps as naive UTC datetimes
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class StoredRef:
    """A reference as read from refs_by_kind: its metadata and its signature bytes."""

    reference: Reference
    signature: bytes

    @property
    def ref_id(self) -> str:
        return self.reference.ref_id

    @property
    def version(self) -> int:
        return self.reference.version

    @property
    def signature_version(self) -> str:
        return self.reference.signature_version


class RefStore:
    """Reads and writes references with prepared statements; every write is timestamped with
    the change's version so that Cassandra keeps the newest change whatever the arrival order."""

    def __init__(self, session: Any, keyspace: str, page_size: int = 500) -> None:
        from cassandra import ConsistencyLevel

        self.session = session
        self.page_size = page_size
        statements = {"put_ref": CQL_PUT_REF, "put_chunk": CQL_PUT_CHUNK, "get_ref": CQL_GET_REF,
                      "scan": CQL_SCAN_REFS, "get_media": CQL_GET_MEDIA, "delete_ref": CQL_DELETE_REF,
                      "delete_media": CQL_DELETE_MEDIA, "put_signature": CQL_PUT_SIGNATURE}
        self.prepared = {name: session.prepare(cql.format(keyspace=keyspace))
                         for name, cql in statements.items()}
        # A follower reads right after the notice of a write: quorum on both sides makes it see it.
        for statement in self.prepared.values():
            statement.consistency_level = ConsistencyLevel.LOCAL_QUORUM

    def put(self, reference: Reference, media: bytes, signature: bytes) -> None:
        """Store media, then the row (the row is what followers see, so it goes last)."""
        from cassandra.concurrent import execute_concurrent_with_args

        ref, version = reference, reference.version
        # Chunks of an older version with a higher index must not survive a shorter rewrite.
        self.session.execute(self.prepared["delete_media"], (version - 1, ref.kind, ref.ref_id))
        chunks = [(ref.kind, ref.ref_id, index, media[start:start + MEDIA_CHUNK_BYTES], version)
                  for index, start in enumerate(range(0, max(len(media), 1), MEDIA_CHUNK_BYTES))]
        execute_concurrent_with_args(self.session, self.prepared["put_chunk"], chunks,
                                     concurrency=8, raise_on_first_error=True)
        self.session.execute(self.prepared["put_ref"], (
            ref.kind, bucket_of(ref.ref_id), ref.ref_id, ref.name, ref.owner, ref.media_sha256,
            ref.mime, ref.size, signature, ref.signature_version, ref.added_at, version, version))

    def put_signature(self, stored: StoredRef, signature: bytes, signature_version: str) -> None:
        """Replace a stale signature. Written at version + 1: above the row it belongs to, below
        any later removal or re-add (see `next_version`), so it never revives a removed row."""
        ref = stored.reference
        self.session.execute(self.prepared["put_signature"], (
            ref.version + 1, signature, signature_version, ref.kind, bucket_of(ref.ref_id), ref.ref_id))

    def delete(self, kind: str, ref_id: str, version: int | None = None) -> None:
        """Remove the row (first: followers stop finding it), then its media."""
        if version is None:
            version = self.next_version(kind, ref_id, _now_us())
        self.session.execute(self.prepared["delete_ref"], (version, kind, bucket_of(ref_id), ref_id))
        self.session.execute(self.prepared["delete_media"], (version, kind, ref_id))

    def next_version(self, kind: str, ref_id: str, now_us: int) -> int:
        """A version newer than anything stored for this reference, even if the clock of the
        writer that stored it ran ahead (+2: a follower's rewritten signature sits at +1)."""
        current = self.get(kind, ref_id)
        return now_us if current is None else max(now_us, current.version + 2)

    def get(self, kind: str, ref_id: str) -> StoredRef | None:
        row = self.session.execute(self.prepared["get_ref"], (kind, bucket_of(ref_id), ref_id)).one()
        return _stored(row)

    def scan(self, kind: str) -> Iterator[StoredRef]:
        """Every reference of a kind, without media, read bucket by bucket in pages."""
        for bucket in range(REF_BUCKETS):
            bound = self.prepared["scan"].bind((kind, bucket))
            bound.fetch_size = self.page_size  # the driver fetches the next page while we iterate
            for row in self.session.execute(bound):
                stored = _stored(row)
                if stored is not None:
                    yield stored

    def media(self, kind: str, ref_id: str) -> bytes | None:
        bound = self.prepared["get_media"].bind((kind, ref_id))
        bound.fetch_size = 8  # chunks of 512 KiB: 4 MiB per page
        chunks = [row.data or b"" for row in self.session.execute(bound)]
        return b"".join(chunks) if chunks else None


def _stored(row: Any) -> StoredRef | None:
    # A row without version is what remains of cells written after its tombstone was purged.
    if row is None or row.version is None:
        return None
    reference = Reference(
        kind=row.kind, ref_id=row.ref_id, name=row.name or "", owner=row.owner or "",
        media_sha256=row.media_sha256, mime=row.mime or "", size=row.size or 0,
        signature_version=row.signature_version or "",
        added_at=(row.added_at - _EPOCH) // _MS if row.added_at else 0, version=row.version)
    return StoredRef(reference, row.signature or b"")


def _now_us() -> int:
    return time.time_ns() // 1000


class NoticePublisher:
    """Publishes notices to refs.v1, keyed by ref_id; `close()` raises if any was not delivered."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        from connectors.kafka import producer

        self.topic = settings.topics.refs
        self.timeout_s = timeout_s
        self.client = producer(settings, acks="all")
        self.pending: list[Any] = []

    def publish(self, notice: RefNotice) -> None:
        self.pending.append(self.client.send(
            self.topic, key=notice.ref_id.encode(), value=encode(notice).encode()))

    def close(self) -> None:
        try:
            self.client.flush(timeout=self.timeout_s)
            for future in self.pending:
                future.get(timeout=self.timeout_s)  # raises the KafkaError of a failed send
        finally:
            self.pending.clear()
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IndexEntry(NamedTuple):
    ref_id: str
    name: str
    signature: bytes


class IndexAdd(NamedTuple):
    """Add or replace this reference in the index."""

    op: str  # "add"
    ref_id: str
    name: str
    signature: bytes


class IndexRemove(NamedTuple):
    op: str  # "remove"
    ref_id: str


class RefFollower:
    """An operator's view of one kind of references: what to index at open and what each
    notice changes. Holds the newest version seen per ref_id (removed ones included), so any
    order of duplicated notices ends in the state Cassandra holds."""

    def __init__(self, store: Any, kind: str, signer: Signer, signature_version: str) -> None:
        self.store = store  # a RefStore, or anything with get / scan / media / put_signature
        self.kind = kind
        self.signer = signer
        self.signature_version = signature_version
        self.versions: dict[str, int] = {}
        self.indexed: set[str] = set()
        self.skipped: dict[str, str] = {}  # ref_id -> why it is not in the index

    def load_all(self) -> list[IndexEntry]:
        """Every stored reference of the kind, signatures recomputed where stale."""
        self.versions.clear()
        self.indexed.clear()
        entries = []
        for stored in self.store.scan(self.kind):
            self.versions[stored.ref_id] = stored.version
            entry = self._entry(stored)
            if entry is not None:
                self.indexed.add(entry.ref_id)
                entries.append(entry)
        return entries

    def apply(self, notice: RefNotice) -> IndexAdd | IndexRemove | None:
        """The index change this notice makes, or None when it changes nothing."""
        ref_id = notice.ref_id
        if notice.kind != self.kind or self.versions.get(ref_id, 0) >= notice.version:
            return None  # another kind's, a duplicate, or older than what we hold
        self.versions[ref_id] = notice.version
        stored = self.store.get(self.kind, ref_id) if notice.op == "add" else None
        if stored is not None:
            # The row may be newer than the notice (re-added since): its version covers both.
            self.versions[ref_id] = max(notice.version, stored.version)
            entry = self._entry(stored)
            if entry is not None:
                self.indexed.add(ref_id)
                return IndexAdd("add", *entry)
        # A removal, or an add whose row is gone (removed since) or whose signature failed.
        if ref_id in self.indexed:
            self.indexed.discard(ref_id)
            return IndexRemove("remove", ref_id)
        return None

    def _entry(self, stored: StoredRef) -> IndexEntry | None:
        ref = stored.reference
        signature = stored.signature
        if stored.signature_version != self.signature_version:
            signature = self._resign(stored)
            if signature is None:
                return None
        self.skipped.pop(ref.ref_id, None)
        return IndexEntry(ref.ref_id, ref.name, signature)

    def _resign(self, stored: StoredRef) -> bytes | None:
        """A signature of the current version, computed from the stored media and written back
        so that the next operator to open does not compute it again."""
        ref = stored.reference
        media = self.store.media(ref.kind, ref.ref_id)
        if media is None or hashlib.sha256(media).hexdigest() != ref.media_sha256:
            return self._skip(ref.ref_id, "stale signature and its media are missing or incomplete")
        try:
            signature, version = self.signer(ref.kind, media)
        except MediaError as exc:
            return self._skip(ref.ref_id, f"stale signature and re-signing failed: {exc}")
        if version != self.signature_version:
            raise ConfigError(f"the signer produces signature version {version!r}, "
                              f"the follower was told {self.signature_version!r}")
        self.store.put_signature(stored, signature, version)
        return signature

    def _skip(self, ref_id: str, reason: str) -> None:
        log.warning("reference %s %s: left out of the %s index", ref_id, reason, self.kind)
        self.skipped[ref_id] = reason
