"""Records that travel between the operators of a job (never on Kafka): an event with its clock."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.alert import Evidence
from schemas.content import ContentEvent
from schemas.findings import TEXT_PART, TextFindings
from schemas.rule import Rule


@dataclass(frozen=True)
class Ingested:
    event: ContentEvent
    ingested_at: int  # epoch ms when the job decoded it
    # Text read from a media part (OCR) travels as an event whose text is that part's; its text
    # findings carry text_part_of(the part's id), so they sit beside the post's own.
    part_id: str = TEXT_PART


@dataclass(frozen=True)
class Analysed:
    event: ContentEvent
    findings: TextFindings
    ingested_at: int
    analysed_at: int


@dataclass(frozen=True)
class StoredRow:
    """One Cassandra upsert: which prepared statement, with which values."""

    statement: str  # a key of connectors.cassandra.STATEMENTS
    values: tuple


@dataclass(frozen=True)
class PartClosed:
    """A media part is done: its final findings are out, and these text parts (read or heard in
    it) went to the text analysis, so fusion knows which text findings are still to come."""

    content_key: str
    part_id: str
    text_parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleMatch:
    """A rule holds on a content item (fusion -> alert shaping, keyed by rule). `revision`
    counts changes of this item's evidence; `step` is 1 for the second step of a sequence."""

    rule: Rule
    event: ContentEvent
    evidence: Evidence
    revision: int
    ingested_at: int
    analysed_at: int
    matched_at: int
    missing: tuple[str, ...] = ()  # parts not in when it was decided (deadline)
    phashes: tuple[str, ...] = ()  # perceptual hashes of the item's images (stories)
    entities: tuple[str, ...] = ()  # entity names in the item (windows by entity, novelty)
    step: int = 0
