"""FusedAnalysis: every part's findings of one content item, joined (findings.v1, and Cassandra
findings_by_content under part_id "fused").

Sent once the item is complete, or at its deadline with `timed_out` and the parts still missing;
a part that arrives after the deadline sends it again, so the stored row ends complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.codec import choices, encode
from schemas.findings import TextFindings
from schemas.media import MediaFindings

FUSED_PART = "fused"


@dataclass(frozen=True)
class PartState:
    part_id: str
    status: str = field(metadata=choices("ok", "partial", "error", "missing"))


@dataclass(frozen=True)
class FusedAnalysis:
    content_key: str
    complete: bool  # every declared part, and the text read or heard in it, is in
    timed_out: bool  # the deadline passed first
    parts: tuple[PartState, ...]
    missing: tuple[str, ...]  # part ids not in (yet)
    failed: tuple[str, ...]  # media parts that could not be fetched or decoded
    platform: str | None
    source: str | None
    author: str | None
    published_at: int | None
    collected_at: int
    texts: tuple[TextFindings, ...] = ()
    media: tuple[MediaFindings, ...] = ()
    fired: tuple[str, ...] = ()  # rule ids that hold on the item
    fused_at: int = 0  # epoch ms
    schema_version: int = 1

    @property
    def part_id(self) -> str:
        return FUSED_PART


def fused_row(fused: FusedAnalysis, as_json: str | None = None) -> tuple:
    """Values for schemas.findings.CQL_UPSERT_FINDINGS: one row beside the item's parts."""
    return (fused.content_key, FUSED_PART, FUSED_PART, fused.collected_at, fused.fused_at,
            as_json if as_json is not None else encode(fused))
