"""Alert: a rule fired on a content item (topic alerts.v1, Cassandra alerts_by_rule, the feed).

`alert_id` is derived from the rule and the content key, so a replay after a restart produces
the same id: every sink upserts and every consumer drops duplicates. New evidence for the same
alert is a new `revision`, never a new alert.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from schemas.codec import choices, encode
from schemas.findings import TermHit
from schemas.rule import SEVERITIES


@dataclass(frozen=True)
class Evidence:
    """The findings the rule's condition used positively, across every part of the content."""

    hits: tuple[TermHit, ...] = ()  # terms and phrases, in any text part (post, OCR, transcript)
    sentiment: float | None = None
    objects: dict[str, int] = field(default_factory=dict)  # object class -> most in one image/frame
    faces: int | None = None
    scenes: dict[str, float] = field(default_factory=dict)  # scene label -> best score
    images: tuple[str, ...] = ()  # tracked reference images seen (ref ids)
    clips: tuple[str, ...] = ()  # tracked reference clips heard (ref ids)
    said: tuple[str, ...] = ()  # phrases heard in the speech
    speech_share: float | None = None


@dataclass(frozen=True)
class WindowStats:
    """Why a windowed rule fired: the window, its count and the baseline it was compared with."""

    kind: str  # threshold | spike | novelty | sequence
    group: str  # the grouping value ("" for the whole rule)
    window_start: int  # epoch ms, event time
    window_end: int
    count: int
    threshold: int | None = None
    baseline_mean: float | None = None
    baseline_std: float | None = None
    z: float | None = None
    entity: str | None = None  # novelty: the entity seen for the first time
    content_keys: tuple[str, ...] = ()  # a sample of the items counted


@dataclass(frozen=True)
class StageTimes:
    """Epoch ms at each stage, so latency is measurable per alert."""

    collected_at: int
    ingested_at: int
    analysed_at: int
    alerted_at: int


@dataclass(frozen=True)
class Alert:
    alert_id: str
    revision: int
    rule_id: str
    rule_version: int
    severity: str = field(metadata=choices(*SEVERITIES))
    content_key: str
    platform: str
    source: str
    author: str
    url: str | None
    excerpt: str
    evidence: Evidence
    times: StageTimes
    routes: tuple[str, ...] = ("feed",)
    story_id: str | None = None  # reposts of the same text or picture are one story, one alert
    story_count: int = 1  # items in the story so far
    missing: tuple[str, ...] = ()  # parts not analysed when it fired (deadline passed)
    window: WindowStats | None = None  # for windowed rules
    schema_version: int = 1


def alert_id_for(rule_id: str, content_key: str) -> str:
    digest = hashlib.sha256(f"{rule_id}\x1f{content_key}".encode()).hexdigest()
    return digest[:32]


CQL_UPSERT_ALERT = (
    "INSERT INTO {keyspace}.alerts_by_rule "
    "(rule_id, collected_at, alert_id, revision, rule_version, severity, content_key, "
    "alerted_at, alert_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def alert_row(alert: Alert, as_json: str | None = None) -> tuple:
    """The upsert's values; `as_json`, when the caller already has the record's JSON, is stored as is."""
    return (
        alert.rule_id, alert.times.collected_at, alert.alert_id, alert.revision,
        alert.rule_version, alert.severity, alert.content_key, alert.times.alerted_at,
        as_json if as_json is not None else encode(alert),
    )
