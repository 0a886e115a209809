"""Records that travel between the operators of a job (never on Kafka): an event with its clock."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.content import ContentEvent
from schemas.findings import TEXT_PART, TextFindings


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
