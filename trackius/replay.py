"""Publishing ContentEvents from a JSON-lines file at a steady rate (the demo and load tests).

Each line is sent as it is, except that `collected_at` is set to the moment of sending (unless
`restamp=False`), so the latency an alert reports is measured from its send. A line that is not
valid JSON is sent unchanged: the job must dead-letter it, and the demo shows that.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors.kafka import producer
from trackius.settings import Settings


def read_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def restamped(line: bytes, now_ms: int) -> tuple[bytes, bytes | None]:
    """(value, key) with collected_at set to now; unparsable lines pass unchanged, unkeyed."""
    try:
        record = json.loads(line)
    except ValueError:
        return line, None
    if not isinstance(record, dict):
        return line, None
    record["collected_at"] = now_ms
    key = record.get("content_key")
    return json.dumps(record, ensure_ascii=False).encode(), key.encode() if isinstance(key, str) else None


def paced(lines: Iterable[bytes], rate: float) -> Iterator[bytes]:
    """Yield lines at `rate` per second, catching up after a stall instead of drifting."""
    start = time.perf_counter()
    for index, line in enumerate(lines):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield line


def replay(settings: Settings, lines: Iterable[bytes], rate: float, restamp: bool = True,
           stop: threading.Event | None = None) -> int:
    client = producer(settings)
    sent = 0
    try:
        for line in paced(lines, rate):
            if stop is not None and stop.is_set():
                break
            value, key = restamped(line, time.time_ns() // 1_000_000) if restamp else (line, None)
            client.send(settings.topics.content_events, key=key, value=value)
            sent += 1
    finally:
        client.flush()
        client.close()
    return sent
