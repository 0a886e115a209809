"""Unit tests of reference media: records and their codec, ids, reading files, the migration,
and the follower's decisions (against an in-memory stand-in for RefStore's four methods)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, UnidentifiedImageError

from connectors.admin import MIGRATIONS_DIR, discover, render, split_statements
from connectors.refs import IndexAdd, IndexRemove, RefFollower, StoredRef
from schemas.codec import decode, encode
from schemas.errors import ConfigError, MediaError, RecordError
from schemas.refs import REF_BUCKETS, Reference, RefNotice, bucket_of, decode_notice, ref_id_for
from trackius.refs_client import read_media, sniff_mime

SHA = hashlib.sha256(b"x").hexdigest()


def make_signer(version: str = "pixels-v1"):
    """A small real signer: sha256 of the decoded pixels (image) or frames (WAV audio)."""
    def sign(kind: str, media: bytes) -> tuple[bytes, str]:
        try:
            if kind == "image":
                with Image.open(io.BytesIO(media)) as image:
                    decoded = image.convert("RGB").tobytes()
            else:
                with wave.open(io.BytesIO(media)) as clip:
                    decoded = clip.readframes(clip.getnframes())
        except (UnidentifiedImageError, OSError, wave.Error, EOFError) as exc:
            raise MediaError("not_media", f"cannot decode this {kind}: {exc}") from exc
        return hashlib.sha256(version.encode() + decoded).digest(), version
    return sign


def png(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def reference(ref_id: str, version: int, **changes: Any) -> Reference:
    base = {"kind": "image", "ref_id": ref_id, "name": f"{ref_id}@{version}", "owner": "t",
                "media_sha256": SHA, "mime": "image/png", "size": 1, "signature_version": "pixels-v1",
                "added_at": version, "version": version}
    return Reference(**{**base, **changes})


# -- records ------------------------------------------------------------------------------------

notices = st.builds(
    RefNotice, kind=st.sampled_from(["image", "audio"]),
    ref_id=st.from_regex(r"[a-z0-9][a-z0-9_.:-]{0,20}", fullmatch=True),
    op=st.sampled_from(["add", "remove"]), version=st.integers(1, 2**63 - 1))


@given(notices)
def test_notice_round_trips_through_json(notice: RefNotice) -> None:
    """Any valid notice decodes back to itself, from bytes as from text."""
    assert decode_notice(encode(notice).encode()) == notice


def test_reference_round_trips_through_json() -> None:
    """A reference (what `refs list` prints) decodes back to itself."""
    ref = reference("img-00112233aabbccdd", 1_700_000_000_000_000, name="Logo ✓")
    assert decode(Reference, encode(ref)) == ref


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"op": "update"}, "op", "'update' is not one of ['add', 'remove']"),
    ({"kind": "video"}, "kind", "'video' is not one of ['audio', 'image']"),
    ({"version": 0}, "version", "must be >= 1, got 0"),
    ({"version": "7"}, "version", "expected int, got string"),
    ({"ref_id": "-bad id"}, "ref_id", "'-bad id' is not 1-128"),
    ({"schema_version": 2}, "schema_version", "2 is not supported (this reader knows 1)"),
    ({"extra": 1}, None, "unknown field(s) extra"),
])
def test_invalid_notices_name_the_field_and_reason(changes: dict, field: str | None, reason: str) -> None:
    """Each invalid notice raises RecordError naming the field and saying what is wrong."""
    raw = {"kind": "image", "ref_id": "img-1", "op": "add", "version": 5, **changes}
    with pytest.raises(RecordError) as failure:
        decode_notice(json.dumps(raw))
    assert failure.value.field == field
    assert failure.value.reason.startswith(reason)


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"kind": "image", "ref_id": "img-1", "version": 5}', "op: missing required field"),
    (b"\xff", "invalid UTF-8 at byte 0"),
    (b"{not json", "malformed JSON"),
    (b"[]", "expected a JSON object, got array"),
])
def test_unreadable_notices_say_why(raw: bytes, message: str) -> None:
    """Missing fields, bad bytes and non-objects are rejected with a precise message."""
    with pytest.raises(RecordError, match=message.replace("(", r"\(")):
        decode_notice(raw)


def test_reference_rejects_a_malformed_sha256() -> None:
    """The media hash is 64 lower-case hex digits, since ids and integrity checks derive from it."""
    with pytest.raises(RecordError, match="media_sha256: expected 64 lower-case hex"):
        reference("img-1", 1, media_sha256="ABC")


def test_ref_ids_come_from_content_and_buckets_are_stable() -> None:
    """Same bytes, same id; the kind picks the prefix; buckets are fixed and in range."""
    digest = hashlib.sha256(b"logo").hexdigest()
    assert ref_id_for("image", digest) == f"img-{digest[:16]}"
    assert ref_id_for("audio", digest) == f"aud-{digest[:16]}"
    with pytest.raises(RecordError, match="kind"):
        ref_id_for("video", digest)
    # A pinned value: the bucket must not change between releases (rows would become unreachable).
    assert bucket_of("img-0000000000000000") == int.from_bytes(
        hashlib.sha256(b"img-0000000000000000").digest()[:4], "big") % REF_BUCKETS
    assert {bucket_of(f"img-{i:016x}") for i in range(400)} == set(range(REF_BUCKETS))


def test_v002_migration_creates_the_two_tables() -> None:
    """V002 is discovered after V001 and splits into the refs and media tables."""
    migrations = {m.version: m for m in discover(MIGRATIONS_DIR)}
    assert migrations[2].name == "refs"
    statements = split_statements(render(migrations[2].path.read_text(), "ks"))
    assert [s.split("(")[0].split()[-1] for s in statements] == ["ks.refs_by_kind", "ks.ref_media"]
    assert "PRIMARY KEY ((kind, bucket), ref_id)" in statements[0]


# -- reading files ------------------------------------------------------------------------------

def test_read_media_names_the_file_and_the_problem(tmp_path: Path) -> None:
    """Missing, empty, directory and oversized inputs each raise MediaError with a code."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    big = tmp_path / "big.png"
    big.write_bytes(b"x" * 100)
    cases = [(tmp_path / "nope.png", "unreachable"), (empty, "not_media"),
             (tmp_path, "not_media"), (big, "too_large")]
    for path, code in cases:
        with pytest.raises(MediaError) as failure:
            read_media(path, limit=50)
        assert failure.value.code == code and str(path) in failure.value.detail


def test_sniff_mime_trusts_bytes_over_the_name(tmp_path: Path) -> None:
    """A PNG named .jpg is image/png; unknown bytes fall back to the extension."""
    assert sniff_mime(png((1, 2, 3)), Path("a.jpg")) == "image/png"
    assert sniff_mime(b"RIFF\0\0\0\0WAVEfmt ", Path("a.bin")) == "audio/wav"
    assert sniff_mime(b"????", Path("a.gif")) == "image/gif"
    assert sniff_mime(b"????", Path("a")) == "application/octet-stream"


def test_signer_rejects_non_media() -> None:
    """The test signer is real: text is not an image."""
    with pytest.raises(MediaError, match="not_media"):
        make_signer()("image", b"hello")


# -- follower decisions -------------------------------------------------------------------------

class MemoryStore:
    """RefStore's read side and signature write-back, in memory: for the follower's logic only
    (tests/integration/test_refs.py runs the follower on Cassandra)."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredRef] = {}
        self.blobs: dict[str, bytes] = {}
        self.resigned: list[str] = []

    def put(self, ref: Reference, media: bytes, signature: bytes) -> None:
        self.rows[ref.ref_id] = StoredRef(ref, signature)
        self.blobs[ref.ref_id] = media

    def delete(self, ref_id: str) -> None:
        del self.rows[ref_id], self.blobs[ref_id]

    def get(self, kind: str, ref_id: str) -> StoredRef | None:
        stored = self.rows.get(ref_id)
        return stored if stored is not None and stored.reference.kind == kind else None

    def scan(self, kind: str) -> Iterator[StoredRef]:
        return (s for s in list(self.rows.values()) if s.reference.kind == kind)

    def media(self, kind: str, ref_id: str) -> bytes | None:
        return self.blobs.get(ref_id)

    def put_signature(self, stored: StoredRef, signature: bytes, version: str) -> None:
        ref = dataclasses.replace(stored.reference, signature_version=version)
        self.rows[ref.ref_id] = StoredRef(ref, signature)
        self.resigned.append(ref.ref_id)


def apply_all(index: dict[str, tuple], changes: list) -> None:
    for change in changes:
        if change is None:
            continue
        if change.op == "add":
            index[change.ref_id] = (change.name, change.signature)
        else:
            del index[change.ref_id]  # a KeyError means a remove of something never indexed


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 2)), max_size=14),
       load_after=st.integers(0, 14), seed=st.integers(0, 2**32))
def test_follower_ends_in_the_stored_state_whatever_the_notice_order(
        ops: list[tuple[str, int]], load_after: int, seed: int) -> None:
    """Loading at any point, then any order of the notices, with duplicates, ends in the store's state."""
    store, sent = MemoryStore(), []
    follower = RefFollower(store, "image", make_signer(), "pixels-v1")
    index: dict[str, tuple] = {}
    for version, (op, n) in enumerate(ops, start=1):
        if version - 1 == load_after:
            index = {e.ref_id: (e.name, e.signature) for e in follower.load_all()}
        ref_id = f"img-{n:016x}"
        if op == "add":
            store.put(reference(ref_id, version), b"", f"sig-{version}".encode())
        elif ref_id in store.rows:
            store.delete(ref_id)
        else:
            continue  # the client refuses to remove what is not stored: no notice
        sent.append(RefNotice("image", ref_id, op, version))
    if load_after >= len(ops):
        index = {e.ref_id: (e.name, e.signature) for e in follower.load_all()}
    rng = random.Random(seed)
    delivered = sent + rng.sample(sent, len(sent) // 2)
    rng.shuffle(delivered)
    apply_all(index, [follower.apply(notice) for notice in delivered])
    assert index == {s.ref_id: (s.reference.name, s.signature) for s in store.rows.values()}


def test_apply_returns_add_remove_and_none() -> None:
    """An add yields the row's entry, a duplicate or another kind's notice nothing, a remove the id."""
    store = MemoryStore()
    follower = RefFollower(store, "image", make_signer(), "pixels-v1")
    assert follower.load_all() == []
    store.put(reference("img-a", 3), b"", b"sig")
    assert follower.apply(RefNotice("image", "img-a", "add", 3)) == ("add", "img-a", "img-a@3", b"sig")
    assert follower.apply(RefNotice("image", "img-a", "add", 3)) is None
    assert follower.apply(RefNotice("audio", "img-a", "remove", 9)) is None
    assert follower.apply(RefNotice("image", "img-a", "remove", 2)) is None  # older than the add
    assert follower.apply(RefNotice("image", "img-a", "remove", 4)) == IndexRemove("remove", "img-a")
    assert follower.apply(RefNotice("image", "img-a", "remove", 5)) is None  # nothing indexed


def test_add_whose_row_is_gone_is_a_no_op() -> None:
    """A notice applied after its row was deleted changes nothing (the remove notice follows)."""
    follower = RefFollower(MemoryStore(), "image", make_signer(), "pixels-v1")
    assert follower.apply(RefNotice("image", "img-gone", "add", 1)) is None


def test_late_add_that_reads_a_newer_row_makes_older_notices_moot() -> None:
    """add v1 arriving after a re-add at v3 indexes the v3 row; the remove v2 then changes nothing."""
    store = MemoryStore()
    store.put(reference("img-r", 3), b"", b"sig3")
    follower = RefFollower(store, "image", make_signer(), "pixels-v1")  # opened before the re-add
    assert follower.apply(RefNotice("image", "img-r", "add", 1)) == ("add", "img-r", "img-r@3", b"sig3")
    assert follower.apply(RefNotice("image", "img-r", "remove", 2)) is None
    assert follower.apply(RefNotice("image", "img-r", "add", 3)) is None


def test_add_whose_row_is_gone_removes_what_was_indexed() -> None:
    """A row found gone proves a newer removal: the indexed entry leaves without waiting for it."""
    store = MemoryStore()
    store.put(reference("img-g", 1), b"", b"sig")
    follower = RefFollower(store, "image", make_signer(), "pixels-v1")
    assert [e.ref_id for e in follower.load_all()] == ["img-g"]
    store.delete("img-g")  # re-added at v2, removed at v3; only the add v2 notice has arrived
    assert follower.apply(RefNotice("image", "img-g", "add", 2)) == ("remove", "img-g")
    assert follower.apply(RefNotice("image", "img-g", "remove", 3)) is None


def test_stale_signature_is_recomputed_from_media_and_written_back() -> None:
    """A row signed by an older signer version is re-signed from its media, once."""
    store, media = MemoryStore(), png((200, 10, 10))
    sha = hashlib.sha256(media).hexdigest()
    store.put(reference("img-old", 1, media_sha256=sha, signature_version="pixels-v0"), media, b"old")
    signer = make_signer("pixels-v1")
    (entry,) = RefFollower(store, "image", signer, "pixels-v1").load_all()
    assert entry.signature == signer("image", media)[0] != b"old"
    assert store.resigned == ["img-old"]
    assert RefFollower(store, "image", signer, "pixels-v1").load_all() == [entry]
    assert store.resigned == ["img-old"]  # the second operator found it current


def test_stale_signature_without_usable_media_is_left_out() -> None:
    """Missing, truncated or undecodable media keep a stale ref out of the index, with a reason."""
    store, media = MemoryStore(), png((1, 1, 1))
    sha = hashlib.sha256(media).hexdigest()
    store.put(reference("img-cut", 1, media_sha256=sha, signature_version="v0"), media[:20], b"s")
    text_sha = hashlib.sha256(b"text").hexdigest()
    store.put(reference("img-txt", 2, media_sha256=text_sha, signature_version="v0"), b"text", b"s")
    follower = RefFollower(store, "image", make_signer("pixels-v1"), "pixels-v1")
    assert follower.load_all() == []
    assert "incomplete" in follower.skipped["img-cut"]
    assert "not_media" in follower.skipped["img-txt"]
    assert follower.apply(RefNotice("image", "img-txt", "add", 3)) is None


def test_a_signer_of_another_version_than_declared_is_a_config_error() -> None:
    """Declaring v2 while the signer makes v1 would re-sign forever: refuse loudly."""
    store, media = MemoryStore(), png((5, 5, 5))
    store.put(reference("img-x", 1, media_sha256=hashlib.sha256(media).hexdigest(),
                        signature_version="v0"), media, b"s")
    with pytest.raises(ConfigError, match="'pixels-v1'.*'pixels-v2'"):
        RefFollower(store, "image", make_signer("pixels-v1"), "pixels-v2").load_all()


def test_index_add_is_a_plain_tuple() -> None:
    """Operators may unpack changes as tuples: ("add", ref_id, name, signature)."""
    assert IndexAdd("add", "i", "n", b"s") == ("add", "i", "n", b"s")
