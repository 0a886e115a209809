"""Fetch the media parts of content (http, https, file and data URIs) for the visual and audio
analysis, with a hard deadline, a size cap, a content check and a small cache.

Every failure is a `MediaError` with a stable code, so a bad part becomes that part's finding:
"bad_uri", "timeout", "too_large", "http_status", "unreachable", "not_media".

The deadline covers the whole exchange, not each socket read: a server that answers a byte at a
time would otherwise hold a worker forever. A single watchdog thread shuts the socket of any
exchange still running at its deadline, which wakes the blocked read at once (DNS resolution is
the one step it cannot interrupt). The bytes are trusted over the declared Content-Type: CDNs
mislabel media all the time, so the declared type only serves to explain a refusal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import http.cookiejar
import itertools
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from schemas.errors import MediaError

MiB = 1 << 20
KINDS = ("image", "video", "audio")
MAX_REDIRECTS = 3
_CHUNK = 64 * 1024
_HEAD = 64  # bytes enough for every signature below

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"II*\x00", "image/tiff"),
          (b"MM\x00*", "image/tiff"), (b"fLaC", "audio/flac"), (b"ID3", "audio/mpeg"))
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FTYP = {b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"M4B ": "audio/mp4",
         b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"avif": "image/avif"}
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
# Audio often travels in containers that sniff as video (an .m4a branded "isom", Opus in WebM),
# and platforms post animated GIFs as video; the decoder downstream has the last word.
_ACCEPTS = {"image": ("image/",), "video": ("video/", "image/gif"),
            "audio": ("audio/", "video/mp4", "video/webm", "video/x-matroska", "video/ogg")}


def sniff(head: bytes) -> str | None:
    """The media type the first bytes announce, or None when they announce no media we know."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF":
        return _RIFF.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _FTYP.get(head[8:12], "video/3gpp" if head[8:11] == b"3gp" else "video/mp4")
    if head[:4] == b"\x1aE\xdf\xa3":
        return "video/webm" if b"webm" in head[:_HEAD] else "video/x-matroska"
    if head[:4] == b"OggS":
        return "video/ogg" if b"\x80theora" in head[:_HEAD] else "audio/ogg"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "image/bmp"
    return _mpeg_audio(head)


def _mpeg_audio(head: bytes) -> str | None:
    """MPEG audio without an ID3 tag starts with an 11-bit frame sync; layer bits 00 mean ADTS."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0 or head[1] & 0x18 == 0x08:
        return None
    return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"


def describe(head: bytes) -> str:
    """Words for bytes that are not media, for the message that refuses them."""
    text = head[:256].lstrip().lower()
    if not head:
        return "an empty body"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        what = "an HTML page"
    elif text.startswith((b"<?xml", b"<svg")):
        what = "XML (SVG is not decoded)"
    elif text[:1] in (b"{", b"["):
        what = "JSON"
    elif all(32 <= b < 127 or b in b"\t\r\n" for b in text):
        what = "plain text"
    else:
        what = "unrecognised binary data"
    return f"{what} starting {head[:24]!r}"


def check_content(data: bytes, kind: str, declared: str | None = None) -> str:
    """The sniffed media type of `data`, or MediaError("not_media") when it is not a `kind`."""
    mime = sniff(data[:_HEAD])
    served = f" (served as {declared})" if declared else ""
    if mime is None:
        raise MediaError("not_media", f"expected {kind}{served}, received {describe(data)}")
    if not mime.startswith(_ACCEPTS[kind]):
        raise MediaError("not_media", f"expected {kind}{served}, received {mime}")
    return mime


@dataclass(frozen=True)
class Media:
    """One fetched part. `fetch_ms` is the time this request spent, 0.0 when the cache served it."""

    uri: str
    data: bytes = field(repr=False)
    mime: str
    sha256: str
    kind: str
    fetch_ms: float = 0.0


class MediaCache:
    """LRU by URI, bounded by entry count and by bytes; identical content fetched under several
    URIs is stored (and counted) once, found by its sha256."""

    def __init__(self, max_items: int = 256, max_bytes: int = 64 * MiB) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._by_uri: OrderedDict[str, Media] = OrderedDict()
        self._by_sha: dict[str, tuple[bytes, int]] = {}  # content and how many URIs name it
        self._lock = threading.Lock()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._by_uri)

    def get(self, uri: str) -> Media | None:
        with self._lock:
            media = self._by_uri.get(uri)
            if media is not None:
                self._by_uri.move_to_end(uri)
            return media

    def content(self, sha256: str) -> bytes | None:
        """Cached content with this digest, whatever URI it came from."""
        with self._lock:
            entry = self._by_sha.get(sha256)
            return entry[0] if entry else None

    def put(self, media: Media) -> Media:
        """Caches `media`; returns it sharing the bytes of identical content already cached."""
        with self._lock:
            if media.uri in self._by_uri:
                self._drop(media.uri)
            data, uses = self._by_sha.get(media.sha256, (media.data, 0))
            if uses == 0:
                self.bytes += len(data)
            self._by_sha[media.sha256] = (data, uses + 1)
            media = replace(media, data=data)
            self._by_uri[media.uri] = media
            while self._by_uri and (len(self._by_uri) > self.max_items
                                    or self.bytes > self.max_bytes):
                self._drop(next(iter(self._by_uri)))
        return media

    def _drop(self, uri: str) -> None:
        sha = self._by_uri.pop(uri).sha256
        data, uses = self._by_sha[sha]
        if uses > 1:
            self._by_sha[sha] = (data, uses - 1)
        else:
            del self._by_sha[sha]
            self.bytes -= len(data)


class _Watchdog:
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


class _Deadline:
    """The deadline of one fetch, armed on the socket of every response it waits for."""

    _current = threading.local()

    def __init__(self, watchdog: _Watchdog, seconds: float) -> None:
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
        _Deadline._current.value = self
        return self

    def __exit__(self, *exc: object) -> None:
        _Deadline._current.value = None
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
        _Deadline.guard(self)  # type: ignore[arg-type]
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _GuardedHTTP(_Guarded, HTTPConnection):
    pass


class _GuardedHTTPS(_Guarded, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPS


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class Fetcher:
    """Fetches media parts on a bounded pool of threads through one HTTP session and a cache.

    Concurrent requests for one URI and kind share one fetch. Errors are not cached: most of them
    (timeouts, 5xx, resets) are transient, and the part's finding records the error anyway.
    Only http(s) results are cached: a data URI is its own content, and a local file is cheaper
    to read again than to hold (and cannot go stale that way)."""

    def __init__(self, timeout_s: float = 5.0, max_bytes: int = 20 * MiB, workers: int = 8,
                 cache_items: int = 256, cache_bytes: int = 64 * MiB,
                 user_agent: str = "Trackius-media/0.1") -> None:
        self.timeout_s, self.max_bytes = timeout_s, max_bytes
        self.cache = MediaCache(cache_items, cache_bytes)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="media-fetch")
        self._watchdog = _Watchdog()
        self._session = _session(workers, user_agent)
        self._inflight: dict[tuple[str, str], Future[Media]] = {}
        self._lock = threading.Lock()

    def submit(self, uri: str, kind: str) -> Future[Media]:
        if kind not in KINDS:
            return _settled(lambda: _refuse_kind(kind))
        cached = self.cache.get(uri)
        if cached is not None:  # answered here: a cache hit never waits for a worker
            return _settled(lambda: _reuse(cached, kind))
        key = (uri, kind)
        with self._lock:
            future = self._inflight.get(key)
            if future is not None:
                return future
            future = self._pool.submit(self._fetch, uri, kind)
            self._inflight[key] = future
        future.add_done_callback(lambda done: self._forget(key, done))
        return future

    def fetch(self, uri: str, kind: str) -> Media:
        return self.submit(uri, kind).result()

    def fetch_many(self, items: Iterable[tuple[str, str]]) -> list[Media | MediaError]:
        """(uri, kind) pairs fetched concurrently; a bad item yields its error in its place."""
        return [_outcome(future) for future in [self.submit(uri, kind) for uri, kind in items]]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._session.close()
        self._watchdog.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget(self, key: tuple[str, str], done: Future[Media]) -> None:
        with self._lock:
            if self._inflight.get(key) is done:
                del self._inflight[key]

    def _fetch(self, uri: str, kind: str) -> Media:
        started = time.perf_counter()
        data, declared = self._load(uri)
        mime = check_content(data, kind, declared)
        digest = hashlib.sha256(data).hexdigest()
        media = Media(uri, data, mime, digest, kind, (time.perf_counter() - started) * 1000)
        return self.cache.put(media) if uri[:5].lower() in ("http:", "https") else media

    def _load(self, uri: str) -> tuple[bytes, str | None]:
        try:
            scheme = urlsplit(uri).scheme.lower()
        except ValueError as exc:
            raise MediaError("bad_uri", f"unparsable URI {uri[:80]!r}: {exc}") from exc
        if scheme in ("http", "https"):
            return self._get(uri)
        if scheme == "file":
            return read_file(uri, self.max_bytes), None
        if scheme == "data":
            return read_data(uri, self.max_bytes)
        raise MediaError("bad_uri", f"{uri[:80]!r}: only http, https, file and data are fetched")

    def _get(self, uri: str) -> tuple[bytes, str | None]:
        with _Deadline(self._watchdog, self.timeout_s) as deadline:
            try:
                return self._follow(uri, deadline)
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
                raise MediaError("bad_uri", f"{uri[:80]!r}: {exc}") from exc
            except (requests.Timeout, urllib3.exceptions.TimeoutError) as exc:
                raise MediaError("timeout", f"{uri}: {deadline.late()}") from exc
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if deadline.fired():  # the watchdog shut the socket: the reader saw a reset
                    raise MediaError("timeout", f"{uri}: {deadline.late()}") from exc
                raise MediaError("unreachable", f"{uri}: {_reason(exc)}") from exc
            except ValueError as exc:  # a redirect to a location that is no URL
                raise MediaError("bad_uri", f"{uri}: {exc}") from exc

    def _follow(self, uri: str, deadline: _Deadline) -> tuple[bytes, str | None]:
        url = uri
        for _ in range(MAX_REDIRECTS + 1):
            left = deadline.remaining(uri)  # each hop gets what is left, not a fresh timeout
            with self._session.get(url, stream=True, allow_redirects=False,
                                   timeout=(left, left)) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise MediaError("bad_uri", f"{uri} redirects to {url[:80]!r}")
                    continue
                if not 200 <= response.status_code < 300:
                    raise MediaError("http_status", f"HTTP {response.status_code} "
                                     f"{response.reason} from {url}")
                body = self._body(response, url, deadline)
                return body, response.headers.get("content-type")
        raise MediaError("http_status", f"{uri}: more than {MAX_REDIRECTS} redirects")

    def _body(self, response: requests.Response, url: str, deadline: _Deadline) -> bytes:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise MediaError("too_large", f"{url} declares {int(length)} bytes, over the cap "
                             f"of {self.max_bytes}")
        chunks, size = [], 0
        while chunk := response.raw.read(_CHUNK, decode_content=True):
            size += len(chunk)
            if size > self.max_bytes:
                raise MediaError("too_large", f"{url} sent more than the cap of "
                                 f"{self.max_bytes} bytes")
            chunks.append(chunk)
        if deadline.fired():  # a body without a length ends at the shut socket as if complete
            raise MediaError("timeout", f"{url}: {deadline.late()} ({size} bytes received)")
        return b"".join(chunks)


def read_file(uri: str, max_bytes: int) -> bytes:
    """The content of a file:// URI on this host, refused past `max_bytes`."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise MediaError("bad_uri", f"{uri[:80]!r} names another host")
    path = Path(unquote(parts.path))
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise MediaError("unreachable", f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise MediaError("too_large", f"{path} is larger than the cap of {max_bytes} bytes")
    return data


def read_data(uri: str, max_bytes: int) -> tuple[bytes, str | None]:
    """The content of a data: URI (base64 or percent-encoded) and its declared type."""
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise MediaError("bad_uri", "a data URI needs a comma before its content")
    params = [param.strip().lower() for param in header.split(";")]
    encoded = "base64" in params[1:]
    if (len(payload) * 3 // 4 if encoded else len(payload)) > max_bytes * (1 if encoded else 3):
        raise MediaError("too_large", f"data URI content is over the cap of {max_bytes} bytes")
    try:
        data = (base64.b64decode(unquote(payload), validate=True) if encoded
                else unquote_to_bytes(payload))
    except (binascii.Error, ValueError) as exc:
        raise MediaError("bad_uri", f"data URI content is not valid base64: {exc}") from exc
    if len(data) > max_bytes:
        raise MediaError("too_large", f"data URI content is over the cap of {max_bytes} bytes")
    return data, params[0] or None


def _session(workers: int, user_agent: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc from the environment: settings are parameters
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    # identity, so Content-Length is the size we will hold and the cap can refuse it up front
    session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "identity"})
    adapter = _GuardedAdapter(pool_connections=16, pool_maxsize=workers)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _reason(exc: Exception) -> str:
    """The root cause without urllib3's pool and retry wrapping around it."""
    cause = getattr(exc.args[0], "reason", None) if exc.args else None
    return str(cause or exc).rpartition("): ")[2]


def _refuse_kind(kind: str) -> Media:
    raise MediaError("unsupported", f"part kind {kind!r} is none of {', '.join(KINDS)}")


def _reuse(cached: Media, kind: str) -> Media:
    check_content(cached.data, kind)  # the same URI may be named as another kind of part
    return replace(cached, kind=kind, fetch_ms=0.0)


def _settled(produce: Callable[[], Media]) -> Future[Media]:
    future: Future[Media] = Future()
    try:
        future.set_result(produce())
    except MediaError as exc:
        future.set_exception(exc)
    return future


def _outcome(future: Future[Media]) -> Media | MediaError:
    try:
        return future.result()
    except MediaError as exc:
        return exc
