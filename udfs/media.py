"""Fetch the media parts of content (http, https, file and data URIs) for the visual and audio
analysis, with a hard deadline, a size cap, a content check and a small cache.

Every failure is a `MediaError` with a stable code, so a bad part becomes that part's finding:
"bad_uri", "timeout", "too_large", "http_status", "unreachable", "not_media".

The deadline covers the whole exchange, not each socket read (see `udfs.deadline`), and the bytes
are trusted over the declared Content-Type (see `udfs.sniff`). `sniff`, `describe`,
`check_content` and `KINDS` are re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.cookiejar
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

from schemas.errors import MediaError
from udfs.deadline import Deadline, GuardedAdapter, Watchdog
from udfs.sniff import KINDS, check_content, describe, sniff

__all__ = ["KINDS", "MAX_REDIRECTS", "Fetcher", "Media", "MediaCache", "MiB", "check_content",
           "describe", "read_data", "read_file", "sniff"]

MiB = 1 << 20
MAX_REDIRECTS = 3
_CHUNK = 64 * 1024


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


class Fetcher:
    """Fetches media parts on a bounded pool of threads through one HTTP session and a cache.

    Concurrent requests for one URI and kind share one fetch. Errors are not cached: most of them
    (timeouts, 5xx, resets) are transient, and the part's finding records the error anyway.
    Only http(s) results are cached: a data URI is its own content, and a local file is cheaper
    to read again than to hold (and cannot go stale that way)."""

    def __init__(self, timeout_s: float = 5.0, max_bytes: int = 20 * MiB, workers: int = 8,
                 cache_items: int = 256, cache_bytes: int = 64 * MiB,
                 user_agent: str = "Trackius-media/0.1", file_roots: tuple[Path, ...] = (Path("/"),)) -> None:
        self.timeout_s, self.max_bytes = timeout_s, max_bytes
        # file:// URIs arrive in public content: only files under these directories are read.
        self.file_roots = tuple(root.resolve() for root in file_roots)
        self.cache = MediaCache(cache_items, cache_bytes)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="media-fetch")
        self._watchdog = Watchdog()
        self._session = _session(workers, user_agent)
        self._inflight: dict[str, tuple[str, Future[Media]]] = {}  # uri -> (kind, fetch)
        self._lock = threading.Lock()

    def submit(self, uri: str, kind: str) -> Future[Media]:
        if kind not in KINDS:
            return _settled(lambda: _refuse_kind(kind))
        cached = self.cache.get(uri)
        if cached is not None:  # answered here: a cache hit never waits for a worker
            return _settled(lambda: _reuse(cached, kind))
        with self._lock:
            running = self._inflight.get(uri)
            if running is not None:
                # A video and its sound name one URI: one download, checked for each kind.
                return running[1] if running[0] == kind else self._shared(running[1], uri, kind)
            future = self._pool.submit(self._fetch, uri, kind)
            self._inflight[uri] = (kind, future)
        future.add_done_callback(lambda done: self._forget(uri, done))
        return future

    def _shared(self, first: Future[Media], uri: str, kind: str) -> Future[Media]:
        """The running fetch of `uri` for another kind, reused for `kind`; when that kind refused
        the bytes (not_media) they were never kept, so this kind fetches them itself."""
        follower: Future[Media] = Future()

        def settle(done: Future[Media]) -> None:
            error = done.exception()
            if isinstance(error, MediaError) and error.code == "not_media":
                self._pool.submit(self._fetch, uri, kind).add_done_callback(lambda own: _copy(own, follower))
            elif error is not None:
                follower.set_exception(error)
            else:
                _copy(_settled(lambda: _reuse(done.result(), kind)), follower)

        first.add_done_callback(settle)
        return follower

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

    def _forget(self, uri: str, done: Future[Media]) -> None:
        with self._lock:
            if self._inflight.get(uri, (None, None))[1] is done:
                del self._inflight[uri]

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
            return read_file(uri, self.max_bytes, self.file_roots), None
        if scheme == "data":
            return read_data(uri, self.max_bytes)
        raise MediaError("bad_uri", f"{uri[:80]!r}: only http, https, file and data are fetched")

    def _get(self, uri: str) -> tuple[bytes, str | None]:
        with Deadline(self._watchdog, self.timeout_s) as deadline:
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

    def _follow(self, uri: str, deadline: Deadline) -> tuple[bytes, str | None]:
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

    def _body(self, response: requests.Response, url: str, deadline: Deadline) -> bytes:
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


def read_file(uri: str, max_bytes: int, roots: tuple[Path, ...] = (Path("/"),)) -> bytes:
    """The content of a file:// URI on this host, under one of `roots`, refused past `max_bytes`."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise MediaError("bad_uri", f"{uri[:80]!r} names another host")
    path = Path(unquote(parts.path)).resolve()  # symlinks and '..' resolved before the check
    if not any(path.is_relative_to(root) for root in roots):
        raise MediaError("forbidden", f"{path} is outside the directories media may be read from")
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
    adapter = GuardedAdapter(pool_connections=16, pool_maxsize=workers)
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


def _copy(source: Future[Media], target: Future[Media]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


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
