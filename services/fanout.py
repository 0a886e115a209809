"""WebSocket fan-out: pushes every alert on `alerts.v1` to the clients subscribed to its rule.

    ws://host:port/feed?rules=r1,r2&since=P   ->  {"position": <offset>, "alert": {...}} ...
    GET /healthz                              ->  200 {"status":"ok","clients":N,"position":P}

One thread follows the alerts log (Kafka partition 0; the offset is the position) and hands
batches to the event loop; the loop deduplicates them in `services.feed` and puts each new
item on the bounded queue of every matching client. A client that resumes with `since` is
registered before its replay is read, so nothing that arrives meanwhile is missed, and its
cursor skips what it already sent. Run with `python -m services.fanout`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from services.feed import (
    FEED_PATH,
    BadAlert,
    BadRequest,
    Cursor,
    FeedBuffer,
    FeedItem,
    Record,
    Snapshot,
    Subscription,
    parse_feed_request,
    replay_records,
    warmup_start,
)
from trackius.settings import Settings

log = logging.getLogger(__name__)

# Live items a client may have waiting before it is cut off with 1013 (it can resume).
CLIENT_QUEUE = 10_000
# Replayed items sent between yields, so one long replay cannot starve the live path.
REPLAY_SLICE = 256
SOURCE_RETRY_S = 1.0
# The broker answers an empty fetch after this long: it bounds the idle part of the latency.
FETCH_MAX_WAIT_MS = 5
POLL_TIMEOUT_MS = 100
# How often the live consumer checks the broker; /healthz fails after three missed checks.
PROBE_S = 1.0
READ_STALL_S = 10.0
# Bounds each connection attempt, so a shutdown while Kafka is down is prompt.
BOOTSTRAP_TIMEOUT_MS = 2000
STOP_TIMEOUT_S = 10.0


class SourceUnavailable(OSError):
    """The alerts log cannot be read (yet): broker down, topic missing or misconfigured."""


class AlertSource(Protocol):
    """A log of alert records with integer offsets; Kafka partition 0 of the alerts topic."""

    @property
    def connected(self) -> bool: ...

    def open(self) -> int:
        """Connect (blocking) and return the end offset: one past the last record."""

    def follow(
        self, start: int, deliver: Callable[[list[Record]], None], stop: threading.Event
    ) -> None:
        """Read from `start` until `stop` is set, handing each batch to `deliver` (blocking)."""

    def read(self, start: int, end: int) -> Iterator[list[Record]]:
        """A one-off read of offsets [start, end) in batches (blocking iterator)."""

    def close(self) -> None: ...


class KafkaAlertSource:
    """Partition 0 of `settings.topics.alerts`: a live consumer plus one-off readers."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._partition = TopicPartition(settings.topics.alerts, 0)
        self._consumer: KafkaConsumer | None = None
        self._last_ok = float("-inf")

    @property
    def connected(self) -> bool:
        return self._consumer is not None and time.monotonic() - self._last_ok < 3 * PROBE_S

    def _new_consumer(self) -> KafkaConsumer:
        s = self._settings
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=s.kafka_bootstrap, client_id="trackius-fanout", group_id=None,
                enable_auto_commit=False, auto_offset_reset="earliest",
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS, max_partition_fetch_bytes=s.max_message_bytes,
                fetch_max_bytes=max(s.max_message_bytes, 50 * 1024 * 1024), max_poll_records=2000,
                # Pure-Python CRC32C made the start-up tail read 4-5x slower (measured); the
                # broker already validates each batch's CRC when it appends it.
                check_crcs=False,
            )
        except KafkaError as exc:
            raise SourceUnavailable(f"Kafka at {s.kafka_bootstrap}: {exc!r}") from exc
        consumer.assign([self._partition])
        return consumer

    def open(self) -> int:
        consumer = self._new_consumer()
        try:
            end = self._end_offset(consumer)
        except SourceUnavailable:
            consumer.close()
            raise
        self._consumer, self._last_ok = consumer, time.monotonic()
        return end

    def _end_offset(self, consumer: KafkaConsumer) -> int:
        topic = self._partition.topic
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise SourceUnavailable(f"topic {topic} does not exist (yet)")
            if len(partitions) != 1:
                # Positions are offsets of one partition; more would break their total order.
                raise SourceUnavailable(f"topic {topic} has partitions {sorted(partitions)}, "
                                        "the fan-out needs exactly one")
            return int(consumer.end_offsets([self._partition], timeout_ms=5000)[self._partition])
        except KafkaError as exc:
            raise SourceUnavailable(f"end offset of {topic}: {exc!r}") from exc

    def follow(
        self, start: int, deliver: Callable[[list[Record]], None], stop: threading.Event
    ) -> None:
        consumer = self._consumer
        assert consumer is not None, "open() first"
        consumer.seek(self._partition, start)
        next_probe = time.monotonic() + PROBE_S
        try:
            while not stop.is_set():
                batch = self._poll(consumer, stop)
                if batch:
                    deliver(batch)
                if time.monotonic() >= next_probe:
                    self._probe(consumer)
                    next_probe = time.monotonic() + PROBE_S
        finally:
            self._consumer = None
            consumer.close()

    def _poll(self, consumer: KafkaConsumer, stop: threading.Event) -> list[Record]:
        try:
            fetched = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        except KafkaError as exc:
            log.warning("polling %s failed: %r; retrying", self._partition.topic, exc)
            self._last_ok = float("-inf")
            stop.wait(SOURCE_RETRY_S)
            return []
        return [Record(r.offset, r.value) for r in fetched.get(self._partition, [])]

    def _probe(self, consumer: KafkaConsumer) -> None:
        try:
            consumer.end_offsets([self._partition], timeout_ms=int(PROBE_S * 1000))
        except KafkaError as exc:
            log.warning("Kafka probe failed: %r", exc)
            return
        self._last_ok = time.monotonic()

    def read(self, start: int, end: int) -> Iterator[list[Record]]:
        consumer = self._new_consumer()
        try:
            consumer.seek(self._partition, start)
            yield from self._read_until(consumer, end)
        except KafkaError as exc:
            raise SourceUnavailable(f"reading back {self._partition.topic}: {exc!r}") from exc
        finally:
            consumer.close()

    def _read_until(self, consumer: KafkaConsumer, end: int) -> Iterator[list[Record]]:
        deadline = time.monotonic() + READ_STALL_S
        stall_ms = int(READ_STALL_S * 1000)
        while consumer.position(self._partition, timeout_ms=stall_ms) < end:
            fetched = consumer.poll(timeout_ms=POLL_TIMEOUT_MS).get(self._partition, [])
            batch = [Record(r.offset, r.value) for r in fetched if r.offset < end]
            if batch:
                deadline = time.monotonic() + READ_STALL_S
                yield batch
            elif time.monotonic() > deadline:
                raise SourceUnavailable(f"no progress reading back {self._partition.topic}")

    def close(self) -> None:
        """The live consumer is closed by `follow`, in the thread that owns it."""


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    subscription: Subscription
    queue: asyncio.Queue[FeedItem]


class FanoutServer:
    """The fan-out service; `source` defaults to the Kafka alerts topic."""

    def __init__(
        self, settings: Settings, source: AlertSource | None = None,
        client_queue: int = CLIENT_QUEUE,
    ) -> None:
        self._settings = settings
        self._source = source if source is not None else KafkaAlertSource(settings)
        self._client_queue = client_queue
        self._capacity = settings.fanout_buffer
        self._clients: set[_Client] = set()
        self._buffer: FeedBuffer | None = None
        self._live_from = -1
        self._stop_source = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self.opened = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port actually bound (useful with fanout_port=0)."""
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen and start following the source (`opened` is set once it is open)."""
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run_source, args=(loop,), name="fanout-source", daemon=True
        )
        self._thread.start()
        self._server = await ws_serve(
            self._handle, self._settings.fanout_host, self._settings.fanout_port,
            process_request=self._process_request, max_size=self._settings.max_message_bytes,
            compression=None,  # deflate would cost CPU per client per message
        )
        log.info("fan-out on ws://%s:%d/feed", self._settings.fanout_host, self.port)

    async def close(self) -> None:
        """Stop accepting, close clients with 1001, stop and close the consumer."""
        if self._server is not None:
            self._server.close(code=CloseCode.GOING_AWAY)
            await self._server.wait_closed()
        self._stop_source.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_S)
        self._source.close()
        log.info("fan-out stopped")

    async def run(self, ready: asyncio.Event | None, stop: asyncio.Event) -> None:
        """Serve until `stop` is set."""
        try:
            await self.start()
            await _first_of(self.opened.wait(), stop.wait())
            if ready is not None and self.opened.is_set():
                ready.set()
            await stop.wait()
        finally:
            await self.close()

    # --- the source thread ---------------------------------------------------------------

    def _run_source(self, loop: asyncio.AbstractEventLoop) -> None:
        end = self._open_source()
        if end is None:
            return
        # Pre-fill from the tail (after a dedup warm-up) so clients resume across restarts.
        keep_from = max(0, end - self._capacity)
        loop.call_soon_threadsafe(self._on_open, keep_from, end)

        def deliver(records: list[Record]) -> None:
            loop.call_soon_threadsafe(self._on_records, records)

        try:
            self._source.follow(warmup_start(keep_from, self._capacity), deliver, self._stop_source)
        except Exception:  # the thread is gone: say so loudly; /healthz turns 503
            log.exception("following %s failed; no more alerts will be fanned out",
                          self._settings.topics.alerts)

    def _open_source(self) -> int | None:
        while not self._stop_source.is_set():
            try:
                return self._source.open()
            except SourceUnavailable as exc:
                log.warning("alerts source not available (%s); retrying", exc)
                self._stop_source.wait(SOURCE_RETRY_S)
        return None

    # --- the event loop: ingest and fan out ----------------------------------------------

    def _on_open(self, keep_from: int, end: int) -> None:
        self._buffer = FeedBuffer(self._capacity, keep_from=keep_from)
        self._live_from = end - 1
        self.opened.set()
        log.info("following %s from offset %d (buffer from %d)",
                 self._settings.topics.alerts, end, keep_from)

    def _on_records(self, records: list[Record]) -> None:
        assert self._buffer is not None
        for record in records:
            try:
                item = self._buffer.ingest(record.offset, record.value)
            except BadAlert as exc:
                log.warning("skipping alerts record at offset %d: %s", record.offset, exc)
                continue
            if item is not None:
                self._fan_out(item)

    def _fan_out(self, item: FeedItem) -> None:
        for client in list(self._clients):
            if not client.subscription.matches(item.rule_id):
                continue
            try:
                client.queue.put_nowait(item)
            except asyncio.QueueFull:
                self._cut_off(client)

    def _cut_off(self, client: _Client) -> None:
        # Close rather than cancel the sender: websockets' advice for a blocked send().
        self._clients.discard(client)
        log.warning("client %s too slow (%d queued); closing with 1013",
                    client.ws.remote_address, client.queue.qsize())
        task = asyncio.create_task(
            client.ws.close(CloseCode.TRY_AGAIN_LATER, "too slow; resume with since")
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- connections ---------------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            return self._health(ws)
        if path.rstrip("/") != FEED_PATH:
            return ws.respond(HTTPStatus.NOT_FOUND, f"the feed is at {FEED_PATH}\n")
        try:
            parse_feed_request(request.path)
        except BadRequest as exc:
            return ws.respond(HTTPStatus.BAD_REQUEST, f"{exc}\n")
        if self._buffer is None:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "alerts source not open yet\n")
        return None

    def _health(self, ws: ServerConnection) -> Response:
        ok = self._buffer is not None and self._source.connected
        body = {"status": "ok" if ok else "unavailable", "clients": len(self._clients),
                "position": self._buffer.position if self._buffer is not None else -1}
        status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        response = ws.respond(status, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        assert self._buffer is not None and ws.request is not None
        request = parse_feed_request(ws.request.path)
        start = request.since
        if start is None:  # live only: from what this server has read, or its start
            start = max(self._buffer.position, self._live_from)
        client = _Client(ws, request.subscription, asyncio.Queue(self._client_queue))
        # Register and snapshot in one step of the loop (no await between): every later item
        # reaches the queue, every earlier one is in the snapshot or, if evicted, in Kafka.
        self._clients.add(client)
        snapshot = self._buffer.snapshot(start, request.subscription)
        cursor = Cursor(request.subscription, start)
        pump = asyncio.create_task(self._pump(client, cursor, snapshot))
        closed = asyncio.create_task(ws.wait_closed())
        try:
            await asyncio.wait({pump, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._clients.discard(client)
            closed.cancel()
            pump.cancel()
            await self._finish(ws, pump)

    async def _finish(self, ws: ServerConnection, pump: asyncio.Task[None]) -> None:
        await asyncio.wait({pump})
        failure = None if pump.cancelled() else pump.exception()
        if failure is not None and not isinstance(failure, ConnectionClosed):
            log.error("feed to %s failed", ws.remote_address, exc_info=failure)
            await ws.close(CloseCode.INTERNAL_ERROR, "feed failed; resume with since")

    async def _pump(self, client: _Client, cursor: Cursor, snapshot: Snapshot) -> None:
        if cursor.position + 1 < snapshot.complete_from:
            await self._send_from_log(client.ws, cursor, snapshot.complete_from)
        await _send_all(client.ws, cursor, snapshot.items)
        while True:
            item = await client.queue.get()
            if cursor.admit(item):
                await client.ws.send(item.message, text=True)

    async def _send_from_log(self, ws: ServerConnection, cursor: Cursor, end: int) -> None:
        """Replay positions the buffer no longer holds with a one-off read of the log."""
        start = cursor.position + 1
        log.info("replaying offsets %d..%d from the log to %s", start, end - 1, ws.remote_address)
        batches = self._source.read(warmup_start(start, self._capacity), end)
        async with aclosing(_iterate_in_thread(batches)) as stream:
            async for batch in stream:
                # Bad records come out as BadAlert values; the live path already logged them.
                items = replay_records(batch, start, self._capacity)
                await _send_all(ws, cursor, (i for i in items if isinstance(i, FeedItem)))


async def _send_all(ws: ServerConnection, cursor: Cursor, items: Iterable[FeedItem]) -> None:
    """Send the items the cursor admits."""
    for index, item in enumerate(items, 1):
        if cursor.admit(item):
            await ws.send(item.message, text=True)
        if index % REPLAY_SLICE == 0:
            # send() yields only when the socket is full: a replay must not starve the live path.
            await asyncio.sleep(0)


async def _iterate_in_thread(
    batches: Iterator[list[Record]],
) -> AsyncGenerator[list[Record], None]:
    """Step a blocking iterator in a worker thread of its own, one batch per hop."""
    done: list[Record] = []
    # One worker runs steps in order, so a close queued after a cancelled step waits for it.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fanout-replay")
    try:
        while (batch := await asyncio.wrap_future(worker.submit(next, batches, done))) is not done:
            yield batch
    finally:
        close: Callable[[], None] | None = getattr(batches, "close", None)
        if close is not None:
            worker.submit(close)
        worker.shutdown(wait=False)


async def _first_of(*waits: Coroutine[Any, Any, object]) -> None:
    """Wait until one of `waits` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()


# --- entry points ----------------------------------------------------------------------------


async def serve(
    settings: Settings, ready: asyncio.Event | None = None, *,
    stop: asyncio.Event | None = None, source: AlertSource | None = None,
) -> None:
    """Run the fan-out until SIGTERM/SIGINT (main thread) or until `stop` is set."""
    stop = stop if stop is not None else asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    await FanoutServer(settings, source).run(ready, stop)


class FanoutHandle:
    """A fan-out serving on its own event loop in a background thread."""

    def __init__(self, server: FanoutServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server, self._loop = server, loop
        self._thread = threading.Thread(target=loop.run_forever, name="fanout", daemon=True)
        self.port = 0

    def start(self, timeout_s: float) -> Self:
        self._thread.start()
        try:
            self._call(self.server.start(), timeout_s)
            self._call(asyncio.wait_for(self.server.opened.wait(), timeout_s), timeout_s + 1)
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"alerts source not open within {timeout_s} s") from exc
        except BaseException:
            self.stop()
            raise
        self.port = self.server.port
        return self

    def _call(self, coro: Coroutine[Any, Any, object], timeout_s: float) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Shut down as on SIGTERM and wait for the thread."""
        if self._loop.is_closed():
            return
        try:
            self._call(self.server.close(), timeout_s)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(
    settings: Settings, source: AlertSource | None = None, *,
    client_queue: int = CLIENT_QUEUE, timeout_s: float = 60.0,
) -> FanoutHandle:
    """Start a fan-out in a background thread; returns once it listens and follows the log.

    Raises TimeoutError when the alerts source does not open within `timeout_s`.
    """
    server = FanoutServer(settings, source, client_queue)
    return FanoutHandle(server, asyncio.new_event_loop()).start(timeout_s)


def main() -> int:
    """`python -m services.fanout`: serve with settings from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(Settings.from_env()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
