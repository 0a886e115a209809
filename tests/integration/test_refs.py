"""Reference media on the real stack: the client writes Cassandra and refs.v1, and a follower
built on the real store loads and follows them."""

from __future__ import annotations

import dataclasses
import io
import time
import uuid
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from cassandra.cluster import Session
from PIL import Image

from connectors.kafka import consumer
from connectors.refs import RefFollower, RefStore
from schemas.refs import RefNotice, bucket_of, decode_notice, ref_id_for
from tests.unit.test_refs import make_signer
from trackius import refs_client
from trackius.refs_client import RefsFailed
from trackius.settings import SHARED_DATA, Settings

pytestmark = pytest.mark.integration
IMAGES = SHARED_DATA / "images" / "skimage"


def unique_png(directory: Path, label: str) -> Path:
    """A real PNG whose pixels (so whose ref id) no other test shares."""
    seed = uuid.uuid4().bytes
    image = Image.frombytes("RGB", (4, 4), (seed * 3)[:48])
    path = directory / f"{label}.png"
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def unique_wav(directory: Path, label: str) -> Path:
    """A real 8 kHz mono WAV clip of unique samples."""
    path = directory / f"{label}.wav"
    with wave.open(str(path), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(8000)
        clip.writeframes(uuid.uuid4().bytes * 50)
    return path


def notices_of(settings: Settings, ref_ids: set[str], count: int,
               timeout_s: float = 20.0) -> list[tuple[bytes, RefNotice]]:
    """(key, notice) of refs.v1 for these ids, in topic order, once `count` are there."""
    deadline = time.monotonic() + timeout_s
    while True:
        reader = consumer(settings, settings.topics.refs, consumer_timeout_ms=500)
        try:
            found = [(m.key, decode_notice(m.value)) for m in reader
                     if decode_notice(m.value).ref_id in ref_ids]
        finally:
            reader.close()
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda item: item[1].version)


@pytest.fixture(scope="module")
def refs_settings(stack_settings: Settings) -> Settings:
    """A keyspace and a refs topic of this module's own: the session's running analyze job
    follows the shared ones, and would re-sign these tests' references with the real signer."""
    from connectors import admin

    settings = stack_settings.replace(cassandra_keyspace="trackius_refs_it",
                                      topics=dataclasses.replace(stack_settings.topics, refs="refs.it.v1"))
    admin.ensure_topics(settings)
    admin.migrate(settings)
    return settings


@pytest.fixture(scope="module")
def store(refs_settings: Settings, cql_session: Session) -> RefStore:
    return RefStore(cql_session, refs_settings.cassandra_keyspace)


def mine(index: dict[str, tuple], ref_ids: set[str]) -> dict[str, tuple]:
    return {ref_id: entry for ref_id, entry in index.items() if ref_id in ref_ids}


def test_add_stores_media_and_signature_then_announces(
        refs_settings: Settings, cql_session: Session, store: RefStore, tmp_path: Path) -> None:
    """Two real images become rows with their signature and full media, and two add notices."""
    paths = [IMAGES / "camera.png", IMAGES / "astronaut.png"]  # astronaut: 773 KiB, two chunks
    signer = make_signer()
    added = refs_client.add(refs_settings, "image", paths, signer, owner="it")
    assert [ref.name for ref in added] == ["camera.png", "astronaut.png"]
    for ref, path in zip(added, paths):
        stored = store.get("image", ref.ref_id)
        assert stored is not None and stored.reference == ref
        assert (stored.signature, stored.signature_version) == signer("image", path.read_bytes())
        assert store.media("image", ref.ref_id) == path.read_bytes()
        assert ref.mime == "image/png" and ref.ref_id.startswith("img-")
    rows = cql_session.execute(f"SELECT count(*) FROM {refs_settings.cassandra_keyspace}.ref_media "
                               "WHERE kind = 'image' AND ref_id = %s",
                               (added[1].ref_id,)).one()
    assert rows.count == 2
    found = notices_of(refs_settings, {ref.ref_id for ref in added}, 2)
    assert [(key.decode(), n.op, n.version) for key, n in found][-2:] == sorted(
        [(ref.ref_id, "add", ref.version) for ref in added], key=lambda item: item[2])


def test_adding_the_same_file_again_is_the_same_reference(
        refs_settings: Settings, store: RefStore, tmp_path: Path) -> None:
    """Re-adding a file replaces its one row under the same id, at a newer version."""
    path = unique_png(tmp_path, "again")
    (first,) = refs_client.add(refs_settings, "image", [path], make_signer())
    (second,) = refs_client.add(refs_settings, "image", [path], make_signer(), name="renamed")
    assert second.ref_id == first.ref_id and second.version > first.version
    assert store.get("image", first.ref_id).reference.name == "renamed"
    listed = [ref for ref in refs_client.list_refs(refs_settings, "image") if ref.ref_id == first.ref_id]
    assert listed == [second]


def test_bad_files_are_named_and_the_others_still_added(
        refs_settings: Settings, store: RefStore, tmp_path: Path) -> None:
    """A text file and a missing file fail with their names; the good image is stored."""
    good, text = unique_png(tmp_path, "good"), tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(RefsFailed) as failure:
        refs_client.add(refs_settings, "image", [text, good, tmp_path / "missing.png"], make_signer())
    assert [source for source, _ in failure.value.failures] == [str(text), str(tmp_path / "missing.png")]
    assert "not_media" in failure.value.failures[0][1]
    assert "unreachable" in failure.value.failures[1][1]
    (added,) = failure.value.done
    assert added.name == "good.png" and store.get("image", added.ref_id) is not None


def test_remove_deletes_then_announces(refs_settings: Settings, store: RefStore, tmp_path: Path) -> None:
    """Removing drops the row and media and publishes a newer remove notice; unknown ids fail."""
    (ref,) = refs_client.add(refs_settings, "image", [unique_png(tmp_path, "gone")], make_signer())
    assert ref in refs_client.list_refs(refs_settings, "image")
    assert refs_client.remove(refs_settings, "image", [ref.ref_id]) == [ref.ref_id]
    assert store.get("image", ref.ref_id) is None and store.media("image", ref.ref_id) is None
    assert ref.ref_id not in {r.ref_id for r in refs_client.list_refs(refs_settings, "image")}
    add, remove = (notice for _, notice in notices_of(refs_settings, {ref.ref_id}, 2))
    assert (add.op, remove.op) == ("add", "remove") and remove.version > add.version
    with pytest.raises(RefsFailed, match="img-0000000000000000: no image reference"):
        refs_client.remove(refs_settings, "image", ["img-0000000000000000"])


def test_follower_loads_then_follows_the_notices(
        refs_settings: Settings, store: RefStore, tmp_path: Path) -> None:
    """Loaded at open, then fed every notice twice, the index holds exactly the stored refs."""
    signer = make_signer()
    a, b = refs_client.add(refs_settings, "image",
                           [unique_png(tmp_path, "a"), unique_png(tmp_path, "b")], signer)
    follower = RefFollower(RefStore(store.session, refs_settings.cassandra_keyspace, page_size=3),
                           "image", signer, "pixels-v1")
    index = {e.ref_id: (e.name, e.signature) for e in follower.load_all()}
    (c,) = refs_client.add(refs_settings, "image", [unique_png(tmp_path, "c")], signer)
    refs_client.remove(refs_settings, "image", [a.ref_id])
    ids = {a.ref_id, b.ref_id, c.ref_id}
    assert set(mine(index, ids)) == {a.ref_id, b.ref_id}
    found = [notice for _, notice in notices_of(refs_settings, ids, 4)]
    assert len(found) == 4
    changes = [follower.apply(notice) for notice in found + found]
    assert [ch[:2] for ch in changes if ch is not None] == [("add", c.ref_id), ("remove", a.ref_id)]
    for change in filter(None, changes):
        if change.op == "add":
            index[change.ref_id] = (change.name, change.signature)
        else:
            del index[change.ref_id]
    assert mine(index, ids) == {ref.ref_id: (ref.name, store.get("image", ref.ref_id).signature)
                                for ref in (b, c)}


def test_stale_signature_is_recomputed_and_never_revives_a_removed_row(
        refs_settings: Settings, store: RefStore, tmp_path: Path) -> None:
    """A follower on signer v2 re-signs a v1 row from its media and stores it; a later removal wins.

    Audio, so that re-signing every row of the kind touches no other test's references."""
    path = unique_wav(tmp_path, "stale")
    (ref,) = refs_client.add(refs_settings, "audio", [path], make_signer("pixels-v1"))
    assert (ref.mime, ref.ref_id[:4]) == ("audio/wav", "aud-")
    calls: list[str] = []
    v2 = counting(make_signer("pixels-v2"), calls)
    entries = {e.ref_id: e for e in RefFollower(store, "audio", v2, "pixels-v2").load_all()}
    expected = make_signer("pixels-v2")("audio", path.read_bytes())[0]
    assert entries[ref.ref_id].signature == expected and ref.ref_id in calls
    stored = store.get("audio", ref.ref_id)
    assert (stored.signature, stored.signature_version) == (expected, "pixels-v2")
    calls.clear()
    RefFollower(store, "audio", v2, "pixels-v2").load_all()
    assert ref.ref_id not in calls  # written back: the next operator does not re-sign
    refs_client.remove(refs_settings, "audio", [ref.ref_id])
    store.put_signature(stored, b"late", "pixels-v3")  # a slow follower writing after the removal
    assert store.get("audio", ref.ref_id) is None
    raw = store.session.execute(
        f"SELECT signature FROM {refs_settings.cassandra_keyspace}.refs_by_kind "
        "WHERE kind = 'audio' AND bucket = %s AND ref_id = %s",
        (bucket_of(ref.ref_id), ref.ref_id)).one()
    assert raw is None  # not even a partial row of signature cells


def counting(signer: Callable, calls: list[str]) -> Callable:
    """The signer, recording which content it signed (by the ref id the client derives)."""
    import hashlib

    def sign(kind: str, media: bytes) -> tuple[bytes, str]:
        calls.append(ref_id_for(kind, hashlib.sha256(media).hexdigest()))
        return signer(kind, media)
    return sign
