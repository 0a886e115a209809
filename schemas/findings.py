"""TextFindings: what the text analysis found in one content item (Cassandra findings_by_content).

Every span is a pair of character offsets (start inclusive, end exclusive) into the event's text
as published, so a reader can highlight it without redoing the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.codec import encode

TEXT_PART = "text"


def text_part_of(part_id: str) -> str:
    """The part_id of the text read in a media part ("sign" -> "sign.text"): its own row beside
    the part's media findings."""
    return f"{part_id}.{TEXT_PART}"


def audio_part_of(part_id: str) -> str:
    """The part_id of a video part's audio track ("clip" -> "clip.audio")."""
    return f"{part_id}.audio"

# Flags a text can carry: why its analysis is partial or what is unusual about it.
FLAGS = (
    "empty",  # no text at all
    "truncated",  # longer than the analysis limit; the head was analysed
    "invalid_utf8",  # undecodable bytes were replaced by U+FFFD
    "emoji_only",  # nothing but emoji and spaces
    "unsegmented_script",  # Chinese, Japanese, Thai...: words are matched character by character
    "unsupported_script",  # mostly a script the sentence splitter and VADER's lexicon do not know
)


@dataclass(frozen=True)
class Sentiment:
    compound: float
    pos: float
    neu: float
    neg: float


@dataclass(frozen=True)
class SentenceSentiment:
    start: int
    end: int
    sentiment: Sentiment


@dataclass(frozen=True)
class Entity:
    """A thing the text names: type is an ENTITY_TYPES value of schemas.condition."""

    text: str  # as written
    type: str
    start: int
    end: int
    name: str | None = None  # the canonical name of a tracked entity ("Tesla" for "Tesla Motors")


@dataclass(frozen=True)
class TermHit:
    """One occurrence of a query term, phrase or wildcard of the active rules.

    `term` is the query's label ("crypt*", "new york", "$doge"); `word`..`word_end` are the
    indices of the matched words, which NEAR/n compares."""

    term: str
    start: int
    end: int
    word: int = 0
    word_end: int = 0


@dataclass(frozen=True)
class TextFindings:
    content_key: str
    sentiment: Sentiment
    sentences: tuple[SentenceSentiment, ...] = ()
    lang: str | None = None  # ISO 639 code, as the platform declared it or as identified (lower case)
    lang_score: float | None = None  # the identifier's probability; None when the platform declared it
    entities: tuple[Entity, ...] = ()
    hits: tuple[TermHit, ...] = ()
    classifiers: dict[str, float] = field(default_factory=dict)  # e.g. {"spam": 0.97}
    flags: tuple[str, ...] = ()
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


def findings_row(findings: TextFindings, as_json: str | None = None) -> tuple:
    """The upsert's values; `as_json`, when the caller already has the record's JSON, is stored as is."""
    return (findings.content_key, findings.part_id, "text", findings.collected_at,
            findings.analysed_at, as_json if as_json is not None else encode(findings))
