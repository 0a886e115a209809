"""Async client of the fan-out feed: follow alerts, resuming after drops without gaps.

    async for item in follow(feed_url(settings, rules=["r1"])):
        print(item["position"], item["alert"]["alert_id"])

After a dropped connection (network, fan-out restart, or 1013 for a slow reader) it
reconnects with `since=<last position>`, so the server replays what was missed; positions
already seen are skipped here too, so a caller never sees one twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from trackius.settings import Settings

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.05
BACKOFF_MAX_S = 5.0


def feed_url(
    settings: Settings, rules: Iterable[str] | None = None, since: int | None = None
) -> str:
    """The feed URL of the fan-out described by `settings`."""
    return with_query(f"ws://{settings.fanout_host}:{settings.fanout_port}/feed", rules, since)


def with_query(url: str, rules: Iterable[str] | None = None, since: int | None = None) -> str:
    """`url` with its `rules` and `since` query parameters replaced (when given)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if rules is not None:
        query["rules"] = ",".join(rules)
    if since is not None:
        query["since"] = str(since)
    return urlunsplit(parts._replace(query=urlencode(query, safe=",")))


async def follow(
    url: str, rules: Iterable[str] | None = None, since: int | None = None,
    reconnect: bool = True, *, max_size: int | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield `{"position": int, "alert": {...}}` items from the feed at `url`.

    With `reconnect`, a drop is followed by a reconnect with `since` after a bounded
    exponential backoff, forever; without it the iterator ends when the connection closes
    normally and raises otherwise. `max_size` bounds one message (None: the server's limit).
    """
    rules = list(rules) if rules is not None else None
    position = since
    backoff = BACKOFF_START_S
    while True:
        try:
            async with connect(with_query(url, rules, position), max_size=max_size,
                               compression=None) as ws:
                backoff = BACKOFF_START_S
                async for message in ws:
                    item = json.loads(message)
                    if position is not None and item["position"] <= position:
                        continue  # belt and braces: the server already skips these
                    position = item["position"]
                    yield item
            if not reconnect:
                return
            log.info("feed closed by the server; resuming after position %s", position)
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
            if not reconnect:
                raise
            log.info("feed dropped (%r); resuming after position %s in %.2f s",
                     exc, position, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_S)
