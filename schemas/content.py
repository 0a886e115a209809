"""ContentEvent: one piece of public content as a collector saw it (topic content.events.v1)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from schemas.codec import choices, decode
from schemas.errors import RecordError

SCHEMA_VERSION = 1
PLATFORMS = (
    "x", "bluesky", "mastodon", "reddit", "youtube", "twitch", "tiktok", "instagram",
    "telegram", "discord", "rss",
)
PART_KINDS = ("image", "video", "audio")
_URI = re.compile(r"^(https?|file|data):", re.IGNORECASE)


@dataclass(frozen=True)
class MediaPart:
    part_id: str
    kind: str = field(metadata=choices(*PART_KINDS))
    uri: str
    mime: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if not _URI.match(self.uri):
            raise RecordError("must be an http(s)://, file:// or data: URI", "uri")


@dataclass(frozen=True)
class ContentEvent:
    content_key: str  # "<platform>:<native id>", the join key of every stage
    platform: str = field(metadata=choices(*PLATFORMS))
    source: str  # channel, subreddit, account stream...
    author: str
    published_at: int  # epoch ms
    collected_at: int  # epoch ms, when the collector saw it
    text: str = ""
    url: str | None = None
    lang: str | None = None
    parts: tuple[MediaPart, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise RecordError(f"unsupported version {self.schema_version}", "schema_version")
        prefix, _, native_id = self.content_key.partition(":")
        if prefix != self.platform or not native_id:
            raise RecordError(f"must look like '{self.platform}:<native id>'", "content_key")
        for name in ("published_at", "collected_at"):
            if getattr(self, name) < 0:
                raise RecordError("must be epoch milliseconds >= 0", name)
        part_ids = [part.part_id for part in self.parts]
        if len(set(part_ids)) != len(part_ids):
            raise RecordError("part_id values must be unique", "parts")


def decode_event(raw: bytes | str) -> ContentEvent:
    return decode(ContentEvent, raw)
