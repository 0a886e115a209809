"""DeadLetter: a record the job could not use, with where it failed and why (content.deadletter.v1).

The original is kept whole when small; a large one keeps a prefix plus its size and SHA-256, so
the dead letter itself always fits under the topic's message limit.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

PAYLOAD_PREFIX_BYTES = 64 * 1024


@dataclass(frozen=True)
class DeadLetter:
    stage: str  # where it failed: "decode", "rules", ...
    reason: str
    source_topic: str
    payload: str  # the original (or its prefix), as text or base64 (see payload_encoding)
    payload_encoding: str  # "utf-8" or "base64"
    payload_bytes: int
    payload_sha256: str
    truncated: bool
    failed_at: int  # epoch ms
    content_key: str | None = None
    schema_version: int = 1


def dead_letter(
    original: bytes, stage: str, reason: str, source_topic: str, failed_at: int,
    content_key: str | None = None,
) -> DeadLetter:
    prefix = original[:PAYLOAD_PREFIX_BYTES]
    text = _utf8_prefix(prefix, truncated=len(original) > PAYLOAD_PREFIX_BYTES)
    if text is not None:
        payload, encoding = text, "utf-8"
    else:
        payload, encoding = base64.b64encode(prefix).decode("ascii"), "base64"
    return DeadLetter(
        stage=stage, reason=reason, source_topic=source_topic, payload=payload,
        payload_encoding=encoding, payload_bytes=len(original),
        payload_sha256=hashlib.sha256(original).hexdigest(),
        truncated=len(original) > PAYLOAD_PREFIX_BYTES, failed_at=failed_at, content_key=content_key,
    )


def _utf8_prefix(prefix: bytes, truncated: bool) -> str | None:
    """The prefix as text, or None if it is not UTF-8. A cut may split the last character
    (up to 3 bytes of it), which does not make a UTF-8 original binary."""
    for cut in range(4 if truncated else 1):
        try:
            return prefix[: len(prefix) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
