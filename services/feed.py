"""Pure core of the WebSocket fan-out: decoding, dedup, the resume buffer and subscriptions.

No I/O, no clock, no threads: `services.fanout` feeds this module the records of the alerts
topic (one partition, so the Kafka offset is a total order and doubles as the client-visible
*position*) and sends what it returns.

Dedup is a pure function of the log, so every path to a client agrees on it: a record is a
duplicate when the same `(alert_id, revision)` occurs among the `window` offsets before it.
The live buffer, a replay read back from Kafka and a freshly restarted server therefore drop
exactly the same records, provided each one first reads `window` records of warm-up.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

AlertKey = tuple[str, int]

FEED_PATH = "/feed"


class BadAlert(ValueError):
    """A record on the alerts topic is not a JSON object with alert_id, revision and rule_id."""


class BadRequest(ValueError):
    """A feed request has an unknown path or an unparsable query."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the alerts log: its offset and raw value."""

    offset: int
    value: bytes


@dataclass(frozen=True, slots=True)
class FeedItem:
    """An accepted alert at its position, with the exact bytes every client is sent."""

    position: int
    alert_id: str
    revision: int
    rule_id: str
    message: bytes

    @property
    def key(self) -> AlertKey:
        return self.alert_id, self.revision


def _reject_constant(name: str) -> object:
    raise BadAlert(f"{name} is not valid JSON")


def decode_item(offset: int, value: bytes | None) -> FeedItem:
    """Validate one record and build its wire message; raises BadAlert naming what is wrong."""
    if value is None:
        raise BadAlert("null value")
    try:
        text = value.decode("utf-8")
        alert = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadAlert(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(alert, dict):
        raise BadAlert(f"not a JSON object but {type(alert).__name__}")
    alert_id, revision, rule_id = alert.get("alert_id"), alert.get("revision"), alert.get("rule_id")
    if not isinstance(alert_id, str) or not isinstance(rule_id, str):
        raise BadAlert("alert_id and rule_id must be strings")
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise BadAlert("revision must be an integer")
    # The alert is opaque: embed its validated text rather than re-encoding it per message.
    message = b'{"position":%d,"alert":%s}' % (offset, text.strip().encode("utf-8"))
    return FeedItem(offset, alert_id, revision, rule_id, message)


@dataclass(frozen=True, slots=True)
class Subscription:
    """The rules a client follows; `None` means every rule."""

    rules: frozenset[str] | None = None

    def matches(self, rule_id: str) -> bool:
        return self.rules is None or rule_id in self.rules


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """What a client asked for: its subscription and, when resuming, the last position it saw."""

    subscription: Subscription
    since: int | None


def parse_feed_request(path: str) -> FeedRequest:
    """Parse `/feed?rules=r1,r2&since=P` (both optional); raises BadRequest."""
    parts = urlsplit(path)
    if parts.path.rstrip("/") != FEED_PATH:
        raise BadRequest(f"unknown path {parts.path!r}; the feed is at {FEED_PATH}")
    query = parse_qs(parts.query)
    names = [n.strip() for value in query.get("rules", []) for n in value.split(",")]
    rules = frozenset(n for n in names if n) or None
    since = None
    if "since" in query:
        raw = query["since"][-1]
        try:
            since = int(raw)
        except ValueError as exc:
            raise BadRequest(f"since={raw!r} is not an integer position") from exc
        if since < -1:
            raise BadRequest(f"since={since} must be -1 (from the start) or a position")
    return FeedRequest(Subscription(rules), since)


class Deduper:
    """Remembers the keys of the last `window` offsets; memory is bounded by `window` keys."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._last_offset: dict[AlertKey, int] = {}
        self._recent: deque[tuple[int, AlertKey]] = deque()

    def is_duplicate(self, offset: int, key: AlertKey) -> bool:
        """Record that `key` occurs at `offset`; True when it also occurred within the window."""
        horizon = offset - self._window
        while self._recent and self._recent[0][0] < horizon:
            old_offset, old_key = self._recent.popleft()
            if self._last_offset.get(old_key) == old_offset:
                del self._last_offset[old_key]
        previous = self._last_offset.get(key)
        self._last_offset[key] = offset
        self._recent.append((offset, key))
        return previous is not None and previous >= horizon


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Buffered items after a position, and the first offset from which the buffer is complete."""

    items: list[FeedItem]
    complete_from: int


class FeedBuffer:
    """The last `capacity` accepted alerts, deduplicated, in position order.

    Records before `keep_from` only warm the deduper (they are the tail read at start-up to
    make dedup exact); `complete_from` is the lowest offset from which every accepted item is
    still held, so a resume after `complete_from - 1` needs nothing but this buffer.
    """

    def __init__(self, capacity: int, keep_from: int = 0, window: int | None = None) -> None:
        self._items: deque[FeedItem] = deque()
        self._capacity = capacity
        self._dedup = Deduper(capacity if window is None else window)
        self._keep_from = keep_from
        self.complete_from = keep_from
        self._last_offset = -1

    @property
    def position(self) -> int:
        """Offset of the last record processed past the warm-up, accepted or not."""
        return max(self._last_offset, self._keep_from - 1)

    def __len__(self) -> int:
        return len(self._items)

    def ingest(self, offset: int, value: bytes | None) -> FeedItem | None:
        """Process one record; return the new item, or None for a duplicate or warm-up record.

        Raises BadAlert for a record that is not an alert (its offset is still consumed).
        """
        if offset <= self._last_offset:
            return None  # re-delivered offset (consumer re-seek): already decided
        self._last_offset = offset
        item = decode_item(offset, value)
        if self._dedup.is_duplicate(offset, item.key) or offset < self._keep_from:
            return None
        self._items.append(item)
        if len(self._items) > self._capacity:
            self.complete_from = self._items.popleft().position + 1
        return item

    def snapshot(self, since: int, subscription: Subscription) -> Snapshot:
        """Items after `since` that match, read from the newest end so cost tracks their count."""
        newer = itertools.takewhile(lambda i: i.position > since, reversed(self._items))
        items = [i for i in newer if subscription.matches(i.rule_id)]
        items.reverse()
        return Snapshot(items, self.complete_from)


class Cursor:
    """One client's view: admits each position at most once, in increasing order."""

    def __init__(self, subscription: Subscription, position: int) -> None:
        self.subscription = subscription
        self.position = position

    def admit(self, item: FeedItem) -> bool:
        """True when `item` is new to this client and matches its subscription."""
        if item.position <= self.position:
            return False
        self.position = item.position
        return self.subscription.matches(item.rule_id)


def warmup_start(start: int, window: int) -> int:
    """The first offset to read so that dedup decisions from `start` on are exact."""
    return max(0, start - window)


def replay_records(
    records: Iterable[Record], emit_from: int, window: int
) -> Iterator[FeedItem | BadAlert]:
    """Deduplicate a run of records read back from the log, exactly as the live buffer did.

    Records before `emit_from` only warm the deduper; bad records come out as BadAlert values
    (an error stream, not an exception) so the caller decides how to log them.
    """
    dedup = Deduper(window)
    for record in records:
        try:
            item = decode_item(record.offset, record.value)
        except BadAlert as exc:
            if record.offset >= emit_from:
                yield exc
            continue
        if not dedup.is_duplicate(record.offset, item.key) and record.offset >= emit_from:
            yield item

