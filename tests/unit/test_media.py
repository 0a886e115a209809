"""Unit tests of media fetching against a real local HTTP server: deadlines (silent and trickling
servers), size caps, HTTP errors, redirects, content checks, file and data URIs, the cache and
bounded concurrency; then the magic-byte sniffer on the shared real media files."""

from __future__ import annotations

import base64
import hashlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote_from_bytes, urlsplit

import pytest

from schemas.errors import MediaError
from trackius.settings import SHARED_DATA
from udfs.media import Fetcher, Media, MediaCache, check_content, sniff

JPEG_PATH = SHARED_DATA / "images" / "ultralytics" / "zidane.jpg"
JPEG = JPEG_PATH.read_bytes()
PNG = (SHARED_DATA / "images" / "skimage" / "camera.png").read_bytes()
HTML = b"<!DOCTYPE html><html><head><title>Not found</title></head><body>gone</body></html>"
CAP = 400_000  # bytes: above the JPEG, below the oversized bodies
DEADLINE = 0.6  # seconds


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.stop = threading.Event()  # releases the handlers that hold a request open

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients that gave up, on purpose
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the session's pool is exercised
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.hits[self.path] += 1
        route = ROUTES[parts.path]
        route(self, parse_qs(parts.query))

    def reply(self, body: bytes, content_type: str = "image/jpeg", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, length: int | None, pieces: Iterator[bytes]) -> None:
        """A body of `pieces`; without a length it ends when the connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        if length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up, as it should


def trickle(handler: Handler) -> Iterator[bytes]:
    yield JPEG[:100]
    while not handler.server.stop.wait(0.05):
        yield b"x"


def slow(handler: Handler, query: dict[str, list[str]]) -> None:
    time.sleep(float(query["delay"][0]))
    handler.reply(JPEG)


def silent(handler: Handler, query: dict[str, list[str]]) -> None:
    handler.server.stop.wait(10)
    handler.close_connection = True


ROUTES = {
    "/photo.jpg": lambda h, q: h.reply(JPEG),
    "/same-photo.jpg": lambda h, q: h.reply(JPEG, "application/octet-stream"),
    "/camera.png": lambda h, q: h.reply(PNG, "image/png"),
    "/html-as-jpeg": lambda h, q: h.reply(HTML),
    "/missing": lambda h, q: h.reply(b"no such thing", "text/plain", 404),
    "/broken": lambda h, q: h.reply(b"oops", "text/plain", 503),
    "/redirect": lambda h, q: (h.send_response(302), h.send_header("Location", "/photo.jpg"),
                               h.send_header("Content-Length", "0"), h.end_headers()),
    "/loop": lambda h, q: (h.send_response(301), h.send_header("Location", "/loop"),
                           h.send_header("Content-Length", "0"), h.end_headers()),
    "/to-ftp": lambda h, q: (h.send_response(302), h.send_header("Location", "ftp://x/a.jpg"),
                             h.send_header("Content-Length", "0"), h.end_headers()),
    "/slow": slow,
    "/silent": silent,
    "/trickle": lambda h, q: h.stream(10 * CAP // 11, trickle(h)),
    "/trickle-unsized": lambda h, q: h.stream(None, trickle(h)),
    "/huge-declared": lambda h, q: h.stream(CAP * 10, iter([JPEG[:1000]])),
    "/huge-unsized": lambda h, q: h.stream(None, iter([JPEG] * 5)),
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()


Url = Callable[[str], str]


@pytest.fixture
def url(server: Server) -> Url:
    return lambda path: f"http://127.0.0.1:{server.server_port}{path}"


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(timeout_s=DEADLINE, max_bytes=CAP, workers=8) as fetcher:
        yield fetcher


def failure(fetcher: Fetcher, uri: str, kind: str = "image") -> MediaError:
    with pytest.raises(MediaError) as caught:
        fetcher.fetch(uri, kind)
    return caught.value


def test_fetches_a_real_jpeg_with_its_digest(fetcher: Fetcher, url: Url) -> None:
    """An HTTP image comes back whole, sniffed as JPEG, with its sha256 and fetch time."""
    media = fetcher.fetch(url("/photo.jpg"), "image")
    assert (media.data, media.mime, media.kind) == (JPEG, "image/jpeg", "image")
    assert media.sha256 == hashlib.sha256(JPEG).hexdigest()
    assert media.fetch_ms > 0


def test_html_served_as_jpeg_is_not_media(fetcher: Fetcher, url: Url) -> None:
    """The bytes decide: an HTML page labelled image/jpeg is refused, naming what came."""
    error = failure(fetcher, url("/html-as-jpeg"))
    assert error.code == "not_media"
    assert "served as image/jpeg" in error.detail and "HTML page" in error.detail


def test_mislabelled_media_is_accepted_by_its_bytes(fetcher: Fetcher, url: Url) -> None:
    """A JPEG served as application/octet-stream is still a JPEG."""
    assert fetcher.fetch(url("/same-photo.jpg"), "image").mime == "image/jpeg"


def test_image_fetched_as_audio_is_not_media(fetcher: Fetcher, url: Url) -> None:
    """A part's kind is checked against what the bytes are."""
    error = failure(fetcher, url("/photo.jpg"), "audio")
    assert (error.code, error.detail.endswith("received image/jpeg")) == ("not_media", True)


@pytest.mark.parametrize(("path", "status"), [("/missing", "404"), ("/broken", "503")])
def test_error_status_names_the_status(fetcher: Fetcher, url: Url, path: str,
                                          status: str) -> None:
    """A non-2xx answer is http_status with the status in the message."""
    error = failure(fetcher, url(path))
    assert error.code == "http_status" and f"HTTP {status}" in error.detail


def test_redirects_are_followed_but_bounded(fetcher: Fetcher, url: Url) -> None:
    """A redirect lands on the photo; a redirect loop stops after a few hops."""
    assert fetcher.fetch(url("/redirect"), "image").data == JPEG
    error = failure(fetcher, url("/loop"))
    assert error.code == "http_status" and "redirects" in error.detail
    assert failure(fetcher, url("/to-ftp")).code == "bad_uri"


@pytest.mark.parametrize("path", ["/silent", "/trickle", "/trickle-unsized"])
def test_deadline_covers_the_whole_exchange(fetcher: Fetcher, url: Url, path: str) -> None:
    """A server that never answers, or trickles bytes, fails with timeout at the deadline."""
    started = time.monotonic()
    error = failure(fetcher, url(path))
    elapsed = time.monotonic() - started
    assert error.code == "timeout", error
    assert DEADLINE * 0.9 <= elapsed < DEADLINE + 0.5


@pytest.mark.parametrize("path", ["/huge-declared", "/huge-unsized"])
def test_bodies_over_the_cap_are_refused(fetcher: Fetcher, url: Url, path: str) -> None:
    """A declared length over the cap is refused up front; an unsized body is cut at the cap."""
    error = failure(fetcher, url(path))
    assert error.code == "too_large" and str(CAP) in error.detail


def test_unreachable_and_bad_uris(fetcher: Fetcher) -> None:
    """Refused connections are unreachable; unknown schemes and garbage are bad_uri."""
    assert failure(fetcher, "http://127.0.0.1:1/x.jpg").code == "unreachable"
    assert failure(fetcher, "ftp://example.com/x.jpg").code == "bad_uri"
    assert failure(fetcher, "http://[::1/x").code == "bad_uri"
    assert failure(fetcher, "http://127.0.0.1:1/x.jpg", "sticker").code == "unsupported"


def test_second_fetch_is_served_by_the_cache(fetcher: Fetcher, server: Server, url: Url) -> None:
    """The same URI twice reaches the server once; the cached answer reports no fetch time."""
    before = server.hits["/camera.png"]
    first, second = (fetcher.fetch(url("/camera.png"), "image") for _ in range(2))
    assert server.hits["/camera.png"] - before == 1
    assert second.data is first.data and second.fetch_ms == 0.0


def test_cache_hit_is_checked_against_the_kind_asked(fetcher: Fetcher, url: Url) -> None:
    """A cached image named again as an audio part is still refused as not audio."""
    fetcher.fetch(url("/camera.png"), "image")
    assert failure(fetcher, url("/camera.png"), "audio").code == "not_media"


def test_errors_are_not_cached(fetcher: Fetcher, server: Server, url: Url) -> None:
    """A failed fetch is tried again on the next request."""
    before = server.hits["/missing"]
    for _ in range(2):
        failure(fetcher, url("/missing"))
    assert server.hits["/missing"] - before == 2


def test_identical_content_is_held_once(fetcher: Fetcher, url: Url) -> None:
    """Two URIs with the same bytes share one stored copy, found by sha256."""
    first = fetcher.fetch(url("/photo.jpg"), "image")
    second = fetcher.fetch(url("/same-photo.jpg"), "image")
    assert first.sha256 == second.sha256 and second.data is first.data
    assert fetcher.cache.bytes == len(JPEG) and len(fetcher.cache) == 2
    assert fetcher.cache.content(first.sha256) == JPEG


def test_cache_is_bounded_by_items_and_bytes() -> None:
    """The least recently used entries go first, by count and by total size."""
    cache = MediaCache(max_items=2, max_bytes=25)
    for name in "abc":
        cache.put(media(name, name.encode() * 10))
    assert (cache.get("a"), len(cache), cache.bytes) == (None, 2, 20)
    cache.get("b")  # now c is the oldest
    cache.put(media("d", b"d" * 10))
    assert [cache.get(n) is not None for n in "bcd"] == [True, False, True]
    cache.put(media("e", b"e" * 20))  # 40 bytes: b and d must go to get under 25
    assert [cache.get(n) is not None for n in "bde"] == [False, False, True]
    assert (len(cache), cache.bytes) == (1, 20)
    cache.put(media("f", b"f" * 26))  # larger than the whole cache: not kept
    assert (cache.get("f"), cache.get("e") is None) == (None, True)


def media(uri: str, data: bytes) -> Media:
    return Media(uri, data, "image/jpeg", hashlib.sha256(data).hexdigest(), "image")


def test_fetch_many_runs_concurrently_and_never_raises(url: Url) -> None:
    """N slow URLs with N workers take about one delay; a bad item yields its error in place."""
    delay, count = 0.4, 6
    uris = [(url(f"/slow?delay={delay}&n={n}"), "image") for n in range(count)]
    with Fetcher(timeout_s=5, workers=count) as fetcher:
        started = time.monotonic()
        results = fetcher.fetch_many([*uris, (url("/missing"), "image")])
        elapsed = time.monotonic() - started
    assert all(isinstance(r, Media) for r in results[:count])
    assert isinstance(results[-1], MediaError) and results[-1].code == "http_status"
    assert elapsed < delay * 2.5, f"{elapsed:.2f} s for {count} fetches of {delay} s"


def test_concurrent_requests_for_one_uri_share_a_fetch(fetcher: Fetcher, server: Server,
                                                       url: Url) -> None:
    """Several parts naming one URI at once reach the server once."""
    path = "/slow?delay=0.2&n=shared"
    futures = [fetcher.submit(url(path), "image") for _ in range(4)]
    assert {f.result().sha256 for f in futures} == {hashlib.sha256(JPEG).hexdigest()}
    assert server.hits[path] == 1


def test_a_video_and_its_sound_share_a_fetch(fetcher: Fetcher, server: Server, url: Url) -> None:
    """One URI named at once as two kinds reaches the server once, each kind checked on its own."""
    path = "/slow?delay=0.2&n=two-kinds"
    image, audio = fetcher.submit(url(path), "image"), fetcher.submit(url(path), "audio")
    assert image.result().kind == "image"
    assert isinstance(audio.exception(), MediaError) and audio.exception().code == "not_media"
    assert server.hits[path] == 1


def test_file_uris(tmp_path: Path) -> None:
    """A local file is read and checked; a missing one names its path; the cap applies."""
    with Fetcher(max_bytes=CAP) as fetcher:
        assert fetcher.fetch(JPEG_PATH.as_uri(), "image").data == JPEG
        missing = tmp_path / "gone.jpg"
        error = failure(fetcher, missing.as_uri())
        assert error.code == "unreachable" and str(missing) in error.detail
    with Fetcher(max_bytes=1000) as small:
        assert failure(small, JPEG_PATH.as_uri()).code == "too_large"


def test_file_uris_only_under_the_allowed_roots(tmp_path: Path) -> None:
    """Content events are public: a file:// URI outside the roots, or a link leading out of
    them, is refused before anything is read."""
    inside = tmp_path / "inside.jpg"
    inside.write_bytes(JPEG)
    (tmp_path / "escape.jpg").symlink_to(JPEG_PATH)
    with Fetcher(max_bytes=CAP, file_roots=(tmp_path,)) as fetcher:
        assert fetcher.fetch(inside.as_uri(), "image").data == JPEG
        for uri in (JPEG_PATH.as_uri(), (tmp_path / "escape.jpg").as_uri(), f"file://{tmp_path}/../etc/passwd"):
            assert failure(fetcher, uri).code == "forbidden"


def test_data_uris() -> None:
    """Base64 and percent-encoded data URIs decode; bad base64 and oversize are refused."""
    encoded = "data:image/png;base64," + base64.b64encode(PNG).decode()
    quoted = "data:image/png," + quote_from_bytes(PNG)
    with Fetcher(max_bytes=CAP) as fetcher:
        assert fetcher.fetch(encoded, "image").data == PNG
        assert fetcher.fetch(quoted, "image").mime == "image/png"
        assert failure(fetcher, "data:image/png;base64,@@@@").code == "bad_uri"
        assert failure(fetcher, "data:image/png;base64").code == "bad_uri"
    with Fetcher(max_bytes=1000) as small:
        assert failure(small, encoded).code == "too_large"


AUDIO = SHARED_DATA / "audio"


@pytest.mark.parametrize(("path", "mime"), [
    (JPEG_PATH, "image/jpeg"),
    (SHARED_DATA / "images" / "skimage" / "camera.png", "image/png"),
    (AUDIO / "librosa" / "sorohanro_-_solo-trumpet-06.ogg", "audio/ogg"),
    (AUDIO / "speech" / "jfk.flac", "audio/flac"),
    (AUDIO / "wakeword" / "alexa_test.wav", "audio/wav"),
    (SHARED_DATA / "video" / "bottle-detection.mp4", "video/mp4"),
    (SHARED_DATA / "video" / "one-by-one-person-detection.mp4", "video/mp4"),
])
def test_sniffs_real_files(path: Path, mime: str) -> None:
    """Real shared media files are recognised by their first bytes."""
    with path.open("rb") as file:
        assert sniff(file.read(64)) == mime


@pytest.mark.parametrize(("head", "mime"), [
    (b"GIF89a\x01\x00", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
    (b"BM" + bytes(12) + (40).to_bytes(4, "little"), "image/bmp"),
    (b"\x00\x00\x00\x14ftypqt  ", "video/quicktime"),
    (b"\x00\x00\x00\x1cftypM4A ", "audio/mp4"),
    (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\x82\x84webm", "video/webm"),
    (b"ID3\x04\x00", "audio/mpeg"),
    (b"\xff\xfb\x90\x64", "audio/mpeg"),
    (b"\xff\xf1\x50\x80", "audio/aac"),
    (b"BMP is not a bitmap header", None),
    (b"\xff\xd8", None),
    (b"", None),
])
def test_sniffs_signatures(head: bytes, mime: str | None) -> None:
    """Each container's signature maps to its type; look-alikes do not."""
    assert sniff(head) == mime


def test_audio_accepts_audio_in_video_containers() -> None:
    """Audio often travels in MP4 or WebM; an MP4 passes as audio, an image does not."""
    with (SHARED_DATA / "video" / "bottle-detection.mp4").open("rb") as file:
        assert check_content(file.read(64), "audio") == "video/mp4"
    with pytest.raises(MediaError, match="received image/png"):
        check_content(PNG, "audio")
