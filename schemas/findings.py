"""TextFindings: what the text analysis found in one content item (Cassandra findings_by_content)."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.codec import encode

TEXT_PART = "text"


@dataclass(frozen=True)
class Sentiment:
    compound: float
    pos: float
    neu: float
    neg: float


@dataclass(frozen=True)
class TermHit:
    """One occurrence of a tracked term or phrase; start/end are character offsets in the text."""

    term: str
    start: int
    end: int


@dataclass(frozen=True)
class TextFindings:
    content_key: str
    sentiment: Sentiment
    hits: tuple[TermHit, ...] = ()
    text_chars: int = 0
    truncated: bool = False  # the text was longer than the analysis limit and was cut
    models: dict[str, str] = field(default_factory=dict)
    collected_at: int = 0  # epoch ms, copied from the event (Cassandra clustering stays replay-stable)
    analysed_at: int = 0  # epoch ms
    part_id: str = TEXT_PART
    schema_version: int = 1

    def matched(self) -> frozenset[str]:
        return frozenset(hit.term for hit in self.hits)


# Kept next to the record it stores; the table itself is created by schemas/cql migrations.
CQL_UPSERT_FINDINGS = (
    "INSERT INTO {keyspace}.findings_by_content "
    "(content_key, part_id, modality, collected_at, analysed_at, findings_json) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def findings_row(findings: TextFindings) -> tuple:
    return (findings.content_key, findings.part_id, "text", findings.collected_at,
            findings.analysed_at, encode(findings))
