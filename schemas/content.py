"""ContentEvent: one piece of public content as a collector saw it (topic content.events.v1)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from schemas.codec import choices, decode, decode_utf8
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
    """Invalid UTF-8 inside a valid record does not cost the event: the bad bytes become U+FFFD
    and the text analysis flags them. A record that is not even JSON keeps the UTF-8 error."""
    if isinstance(raw, bytes):
        try:
            raw = decode_utf8(raw)
        except RecordError as invalid:
            try:
                return decode(ContentEvent, raw.decode("utf-8", errors="replace"))
            except RecordError as other:
                if other.reason.startswith("malformed JSON"):
                    raise invalid from other
                raise
    return decode(ContentEvent, raw)
