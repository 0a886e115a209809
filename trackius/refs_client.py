"""Adding, removing and listing tracked reference media (`trackius refs add|remove|list`).

A reference is written to Cassandra first (media, then the row with its signature) and its
notice published on refs.v1 second, so an operator that sees the notice finds the row. The id
comes from the content (`img-` + 16 hex digits of the sha256), so adding a file again replaces
the same reference. A file that cannot be added does not stop the others: they are all tried,
and `RefsFailed` then names every failure (and carries what succeeded) for the CLI's exit code.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from connectors.refs import NoticePublisher, RefStore, Signer
from schemas.errors import MediaError, RecordError, TrackiusError
from schemas.refs import KINDS, Reference, RefNotice, ref_id_for
from trackius.settings import Settings

# Media never travel on Kafka, but a reference is loaded into every operator's memory on demand.
MAX_MEDIA_BYTES = 32 * 1024 * 1024
# Leading bytes of the formats we expect, to record a mime type that does not trust the name.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"), (b"fLaC", "audio/flac"), (b"OggS", "audio/ogg"), (b"ID3", "audio/mpeg"),
)


class RefsFailed(TrackiusError):
    """Some sources or ids failed; `done` holds what succeeded, `failures` (source, reason)."""

    def __init__(self, done: Sequence[object], failures: Sequence[tuple[str, str]]) -> None:
        lines = "\n".join(f"  {source}: {reason}" for source, reason in failures)
        super().__init__(f"{len(failures)} of {len(done) + len(failures)} failed:\n{lines}")
        self.done = list(done)
        self.failures = list(failures)


def add(settings: Settings, kind: str, paths: Sequence[Path], signer: Signer,
        name: str | None = None, owner: str = "cli") -> list[Reference]:
    """Store and announce each file as a reference of `kind`; RefsFailed if any file failed."""
    _check_kind(kind)
    added: list[Reference] = []
    failures: list[tuple[str, str]] = []
    with _store(settings) as store, NoticePublisher(settings) as notices:
        for path in paths:
            try:
                reference = _add_one(store, kind, Path(path), signer, name, owner)
            except (MediaError, RecordError) as exc:
                failures.append((str(path), str(exc)))
                continue
            notices.publish(RefNotice(kind, reference.ref_id, "add", reference.version))
            added.append(reference)
    if failures:
        raise RefsFailed(added, failures)
    return added


def remove(settings: Settings, kind: str, ref_ids: Sequence[str]) -> list[str]:
    """Delete each reference, then announce it; RefsFailed names ids that are not stored."""
    _check_kind(kind)
    removed: list[str] = []
    failures: list[tuple[str, str]] = []
    with _store(settings) as store, NoticePublisher(settings) as notices:
        for ref_id in ref_ids:
            if store.get(kind, ref_id) is None:
                failures.append((ref_id, f"no {kind} reference with this id"))
                continue
            version = store.next_version(kind, ref_id, _now_us())
            store.delete(kind, ref_id, version)
            notices.publish(RefNotice(kind, ref_id, "remove", version))
            removed.append(ref_id)
    if failures:
        raise RefsFailed(removed, failures)
    return removed


def list_refs(settings: Settings, kind: str) -> list[Reference]:
    """Every stored reference of `kind`, oldest first."""
    _check_kind(kind)
    with _store(settings) as store:
        references = [stored.reference for stored in store.scan(kind)]
    return sorted(references, key=lambda ref: (ref.added_at, ref.ref_id))


def _add_one(store: RefStore, kind: str, path: Path, signer: Signer, name: str | None,
             owner: str) -> Reference:
    media = read_media(path)
    signature, signature_version = signer(kind, media)  # raises MediaError for non-media
    sha256 = hashlib.sha256(media).hexdigest()
    ref_id = ref_id_for(kind, sha256)
    now_us = _now_us()
    reference = Reference(
        kind=kind, ref_id=ref_id, name=name or path.name, owner=owner, media_sha256=sha256,
        mime=sniff_mime(media, path), size=len(media), signature_version=signature_version,
        added_at=now_us // 1000, version=store.next_version(kind, ref_id, now_us))
    store.put(reference, media, signature)
    return reference


def read_media(path: Path, limit: int = MAX_MEDIA_BYTES) -> bytes:
    """The bytes of a media file; MediaError names the file and what is wrong with it."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise MediaError("not_media", f"{path} is not a regular file")
        if size > limit:
            raise MediaError("too_large", f"{path} has {size} bytes, more than the {limit} allowed")
        media = path.read_bytes()
    except OSError as exc:
        raise MediaError("unreachable", f"{path}: {exc.strerror or exc}") from exc
    if not media:
        raise MediaError("not_media", f"{path} is empty")
    return media


def sniff_mime(media: bytes, path: Path) -> str:
    """The media type by its leading bytes, else by the file name."""
    for magic, mime in _MAGIC:
        if media.startswith(magic):
            return mime
    if media[:4] == b"RIFF" and media[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if media[8:12] == b"WEBP" else "audio/wav"
    if media[4:8] == b"ftyp":
        return "audio/mp4" if media[8:11] == b"M4A" else "video/mp4"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RecordError(f"{kind!r} is not one of {list(KINDS)}", "kind")


@contextmanager
def _store(settings: Settings) -> Iterator[RefStore]:
    from connectors.admin import cassandra_session

    session = cassandra_session(settings)
    try:
        yield RefStore(session, settings.cassandra_keyspace)
    finally:
        session.cluster.shutdown()


def _now_us() -> int:
    return time.time_ns() // 1000
