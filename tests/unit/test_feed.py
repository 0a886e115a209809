"""Unit tests of the fan-out's pure core: decoding, dedup, the resume buffer, subscriptions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.feed import (
    BadAlert,
    BadRequest,
    Cursor,
    Deduper,
    FeedBuffer,
    FeedItem,
    Record,
    Subscription,
    decode_item,
    parse_feed_request,
    replay_records,
    warmup_start,
)

ALL = Subscription()


def alert(alert_id: str, revision: int = 1, rule_id: str = "r1", **extra: object) -> bytes:
    return json.dumps({"alert_id": alert_id, "revision": revision, "rule_id": rule_id, **extra}).encode()


def test_decode_item_embeds_alert_verbatim() -> None:
    """The wire message is {"position", "alert"} with the alert's fields untouched."""
    item = decode_item(7, alert("a", 2, "r9", evidence={"terms": ["doge"]}, score=0.5))
    assert (item.position, item.key, item.rule_id) == (7, ("a", 2), "r9")
    message = json.loads(item.message)
    assert message["position"] == 7
    assert message["alert"]["evidence"] == {"terms": ["doge"]} and message["alert"]["score"] == 0.5


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"\xff\xfe",
        b"not json",
        b"[1, 2]",
        b'{"alert_id": "a", "revision": 1}',
        b'{"alert_id": 1, "revision": 1, "rule_id": "r"}',
        b'{"alert_id": "a", "revision": "1", "rule_id": "r"}',
        b'{"alert_id": "a", "revision": true, "rule_id": "r"}',
        b'{"alert_id": "a", "revision": 1, "rule_id": "r", "score": NaN}',
    ],
)
def test_decode_item_rejects_non_alerts(value: bytes | None) -> None:
    """Anything but a JSON object with string ids and an integer revision is a BadAlert."""
    with pytest.raises(BadAlert):
        decode_item(0, value)


def test_parse_feed_request_defaults_to_all_rules_live() -> None:
    """A bare /feed follows every rule from now on."""
    request = parse_feed_request("/feed")
    assert request.subscription == ALL and request.since is None


def test_parse_feed_request_reads_rules_and_since() -> None:
    """rules is a comma list (repeatable) and since an integer position."""
    request = parse_feed_request("/feed?rules=r1,%20r2&rules=r3&since=41")
    assert request.subscription.rules == {"r1", "r2", "r3"} and request.since == 41


@pytest.mark.parametrize("path", ["/other", "/feed?since=abc", "/feed?since=-5", "/feed/x"])
def test_parse_feed_request_rejects_bad_requests(path: str) -> None:
    """Unknown paths and unparsable positions are refused, not guessed."""
    with pytest.raises(BadRequest):
        parse_feed_request(path)


def test_deduper_forgets_keys_older_than_its_window() -> None:
    """A repeat within the window is a duplicate; one after it is not (bounded memory)."""
    dedup = Deduper(window=3)
    assert [dedup.is_duplicate(o, ("a", 1)) for o in (0, 2)] == [False, True]
    assert dedup.is_duplicate(6, ("a", 1)) is False
    assert len(dedup._recent) <= 4


def test_buffer_drops_duplicates_and_tracks_completeness() -> None:
    """Duplicates get no position; evicting the oldest item moves complete_from past it."""
    buffer = FeedBuffer(capacity=2, window=100)
    got = [buffer.ingest(o, alert(a)) for o, a in enumerate("abac")]
    assert [i.position if i else None for i in got] == [0, 1, None, 3]
    assert buffer.complete_from == 1 and buffer.position == 3
    assert [i.position for i in buffer.snapshot(-1, ALL).items] == [1, 3]


def test_buffer_ignores_redelivered_offsets() -> None:
    """A record whose offset was already processed is not offered again."""
    buffer = FeedBuffer(capacity=10)
    assert buffer.ingest(0, alert("a")) is not None
    assert buffer.ingest(0, alert("a")) is None


def test_buffer_warmup_records_dedup_but_are_not_kept() -> None:
    """Records before keep_from only teach the deduper."""
    buffer = FeedBuffer(capacity=10, keep_from=2)
    assert buffer.ingest(0, alert("a")) is None and buffer.ingest(1, alert("b")) is None
    assert buffer.ingest(2, alert("a")) is None
    assert buffer.ingest(3, alert("c")) is not None
    assert [i.position for i in buffer.snapshot(-1, ALL).items] == [3]


def test_buffer_consumes_offsets_of_bad_records() -> None:
    """A bad record raises but its offset still advances the position."""
    buffer = FeedBuffer(capacity=10)
    with pytest.raises(BadAlert):
        buffer.ingest(0, b"junk")
    assert buffer.position == 0 and buffer.ingest(1, alert("a")) is not None


def test_snapshot_filters_by_subscription_and_position() -> None:
    """A resume sees only matching items after its position."""
    buffer = FeedBuffer(capacity=10)
    for offset, rule in enumerate(["r1", "r2", "r1", "r2"]):
        buffer.ingest(offset, alert(f"a{offset}", rule_id=rule))
    items = buffer.snapshot(0, Subscription(frozenset({"r1"}))).items
    assert [i.position for i in items] == [2]


def test_cursor_admits_each_position_once_in_order() -> None:
    """Positions at or before the cursor are skipped; others matching are admitted."""
    cursor = Cursor(Subscription(frozenset({"r1"})), position=5)
    items = [FeedItem(p, f"a{p}", 1, r, b"") for p, r in [(4, "r1"), (6, "r2"), (7, "r1"), (7, "r1")]]
    assert [cursor.admit(i) for i in items] == [False, False, True, False]


# --- properties ---------------------------------------------------------------------------

keys = st.tuples(st.sampled_from("abcdefgh"), st.integers(1, 3), st.sampled_from(["r1", "r2"]))
values = st.one_of(keys.map(lambda k: alert(k[0] + k[2], k[1], k[2])), st.just(b"{bad"))
logs = st.lists(values, max_size=60)


def expected(log: list[bytes], subscription: Subscription, window: int) -> list[FeedItem]:
    """Reference dedup straight from the definition: key not seen in the previous window."""
    out: list[FeedItem] = []
    last_seen: dict[tuple[str, int], int] = {}
    for offset, value in enumerate(log):
        try:
            item = decode_item(offset, value)
        except BadAlert:
            continue
        previous = last_seen.get(item.key)
        last_seen[item.key] = offset
        if (previous is None or previous < offset - window) and subscription.matches(item.rule_id):
            out.append(item)
    return out


def feed(buffer: FeedBuffer, log: list[bytes], count: int, queue: list[FeedItem]) -> None:
    """Ingest the next `count` records of the log, queueing what is accepted (the live path)."""
    start = buffer.position + 1
    for offset in range(start, min(start + count, len(log))):
        try:
            item = buffer.ingest(offset, log[offset])
        except BadAlert:
            continue
        if item is not None:
            queue.append(item)


def resume(
    log: list[bytes], buffer: FeedBuffer, since: int, sub: Subscription, window: int,
    race: tuple[int, int],
) -> list[FeedItem]:
    """Model of one connection: queue registered, snapshot, replay from the log, queue drained.

    `race` counts live records ingested between registration and snapshot (the order the server
    avoids, kept here to show the cursor copes) and then during the replay; the rest of the log
    arrives live afterwards.
    """
    queue: list[FeedItem] = []
    feed(buffer, log, race[0], queue)
    snap = buffer.snapshot(since, sub)
    feed(buffer, log, race[1], queue)
    cursor, sent = Cursor(sub, since), []
    if since + 1 < snap.complete_from:
        start = warmup_start(since + 1, window)
        records = (Record(o, log[o]) for o in range(start, snap.complete_from))
        old = [i for i in replay_records(records, since + 1, window) if isinstance(i, FeedItem)]
        sent += [i for i in old if cursor.admit(i)]
    sent += [i for i in snap.items if cursor.admit(i)]
    feed(buffer, log, len(log), queue)
    sent += [i for i in queue if cursor.admit(i)]
    return sent


@settings(max_examples=300, deadline=None)
@given(
    log=logs,
    capacity=st.integers(1, 12),
    rules=st.sampled_from([None, frozenset({"r1"})]),
    live=st.integers(0, 60),
    received=st.integers(0, 60),
    gap=st.integers(0, 60),
    race=st.tuples(st.integers(0, 10), st.integers(0, 10)),
)
def test_resume_at_any_position_sees_each_alert_once_in_order(
    log: list[bytes], capacity: int, rules: frozenset[str] | None, live: int, received: int,
    gap: int, race: tuple[int, int],
) -> None:
    """Live, a drop at any point, missed records, a racy resume: each alert exactly once."""
    window = len(log) + 1  # within the window, "duplicate" means "seen before" exactly
    sub, buffer = Subscription(rules), FeedBuffer(capacity, window=window)
    queue: list[FeedItem] = []
    feed(buffer, log, live, queue)
    cursor = Cursor(sub, -1)
    first = [i for i in queue if cursor.admit(i)][:received]
    since = first[-1].position if first else -1
    feed(buffer, log, gap, [])
    second = resume(log, buffer, since, sub, window, race)
    seen = first + second
    assert [i.position for i in seen] == [i.position for i in expected(log, sub, window)]
    assert len({i.key for i in seen}) == len(seen)


@settings(max_examples=200, deadline=None)
@given(log=logs, window=st.integers(1, 20), start=st.integers(0, 60))
def test_replay_from_log_agrees_with_live_dedup(log: list[bytes], window: int, start: int) -> None:
    """Reading back from the log with warm-up drops exactly what the live buffer dropped."""
    buffer = FeedBuffer(capacity=len(log) + 1, window=window)
    live = []
    for offset, value in enumerate(log):
        try:
            item = buffer.ingest(offset, value)
        except BadAlert:
            continue
        if item is not None and offset >= start:
            live.append(item)
    records = [Record(o, log[o]) for o in range(warmup_start(start, window), len(log))]
    replayed = [i for i in replay_records(records, start, window) if isinstance(i, FeedItem)]
    assert replayed == live == expected(log, ALL, window)[len(expected(log[:start], ALL, window)):]
