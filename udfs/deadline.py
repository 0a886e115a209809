"""A hard deadline on a whole HTTP exchange made through `requests`, for the media fetcher.

The deadline covers the whole exchange, not each socket read: a server that answers a byte at a
time would otherwise hold a worker forever. A single `Watchdog` thread shuts the socket of any
exchange still running at its deadline, which wakes the blocked read at once (DNS resolution is
the one step it cannot interrupt). A fetch runs inside `with Deadline(watchdog, seconds)`, through
a session with a `GuardedAdapter` mounted, whose connections arm the current thread's deadline on
their socket just before waiting for the answer.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Self

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from schemas.errors import MediaError


class Watchdog:
    """One thread that shuts the sockets of exchanges still running at their deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, list[socket.socket | None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="media-watchdog", daemon=True)
        self._thread.start()

    def arm(self, deadline: float, sock: socket.socket) -> list[socket.socket | None]:
        slot: list[socket.socket | None] = [sock]
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._order), slot))
            if self._heap[0][2] is slot:  # only an earlier deadline changes how long to sleep
                self._wake.notify()
        return slot

    def disarm(self, slot: list[socket.socket | None]) -> None:
        with self._wake:  # under the lock, so a socket handed back to the pool is never shut
            slot[0] = None

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._wake:
            while not self._closed:
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._wake.wait(wait)
                    continue
                slot = heapq.heappop(self._heap)[2]
                if slot[0] is not None:
                    _shut(slot[0])
                    slot[0] = None


def _shut(sock: socket.socket) -> None:
    try:  # the plain socket call: ssl's own shutdown would drop its state under the reader
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its owner: nothing left to interrupt


class Deadline:
    """The deadline of one fetch, armed on the socket of every response it waits for."""

    _current = threading.local()

    def __init__(self, watchdog: Watchdog, seconds: float) -> None:
        self.watchdog, self.seconds = watchdog, seconds
        self.at = time.monotonic() + seconds
        self.slots: list[list[socket.socket | None]] = []

    def remaining(self, uri: str) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise MediaError("timeout", f"{uri}: {self.late()}")
        return left

    def late(self) -> str:
        return f"no complete answer within {self.seconds:g} s"

    def fired(self) -> bool:
        return time.monotonic() >= self.at

    def __enter__(self) -> Self:
        Deadline._current.value = self
        return self

    def __exit__(self, *exc: object) -> None:
        Deadline._current.value = None
        for slot in self.slots:
            self.watchdog.disarm(slot)

    @classmethod
    def guard(cls, connection: HTTPConnection) -> None:
        deadline = getattr(cls._current, "value", None)
        if deadline is None or connection.sock is None:
            return
        # A connection handed back to the pool at its last byte may be reused before its old
        # fetch disarms: the new exchange disarms it first, so its socket is not shut under it.
        previous = getattr(connection, "_deadline_slot", None)
        if previous is not None:
            deadline.watchdog.disarm(previous)
        slot = deadline.watchdog.arm(deadline.at, connection.sock)
        connection._deadline_slot = slot  # type: ignore[attr-defined]
        deadline.slots.append(slot)


class _Guarded:
    """Arms the current fetch's deadline on the socket just before waiting for the answer."""

    def getresponse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        Deadline.guard(self)  # type: ignore[arg-type]
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _GuardedHTTP(_Guarded, HTTPConnection):
    pass


class _GuardedHTTPS(_Guarded, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPS


class GuardedAdapter(HTTPAdapter):
    """A requests transport whose connections obey the current thread's `Deadline`."""

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
