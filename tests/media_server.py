"""A local HTTP server for the media tests and benchmarks: fixed routes (a query string is
ignored, so unique URIs can defeat the fetch cache), a 404 for any other path, and paths that
never answer (until the server stops), each user with routes of its own."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def serve(routes: dict[str, tuple[str, bytes]], hang: Iterable[str] = ()) -> Iterator[str]:
    """Serve `routes` (path -> (Content-Type, body)) on a free port; yields the base URL."""
    silent = frozenset(hang)
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in silent:
                release.wait(60)
                return
            found = routes.get(path)
            if found is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", found[0])
            self.send_header("Content-Length", str(len(found[1])))
            self.end_headers()
            self.wfile.write(found[1])

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        release.set()
        httpd.shutdown()
