"""Fusion: every part's findings of one content item, joined, and rules evaluated over the whole.

Pure: the Flink adapter (udfs/fuse_operator.py) keeps one `Content` per content key in keyed
state and passes the clock in. A content item declares its parts (the event arrives with the
findings of its own text); media parts report progressively, and a media part is closed once its
final findings are in and the text read or heard in it (OCR, transcripts) has arrived.

Rules are evaluated on every partial result with three-valued logic (udfs/evaluate.py): each fact
is true, false or unknown (None) given what has arrived so far. A term is true as soon as any text part has it and
false only once no text can still come; `object("person") >= 2` is true as soon as one image
shows two people and false only once every image and video is closed. So a rule fires the moment
its outcome is decided and waits only for the parts it references. At the deadline, what is still
unknown is resolved as if the missing parts had found nothing (`closed_world`), and the alert and
the FusedAnalysis list the parts that were missing.

An outcome depends on the set of findings, never on their arrival order: each fact is a
function of the set (maxima, unions, "all parts closed"), and partial findings of a part are
replaced by later ones of the same part, never merged with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import encode
from schemas.content import ContentEvent
from schemas.findings import TEXT_PART, TextFindings, audio_part_of
from schemas.fused import FusedAnalysis, PartState
from schemas.media import MediaFindings
from schemas.pipeline import PartClosed, RuleMatch
from schemas.textnorm import normalize
from udfs.evaluate import FusedFacts, evaluate, evidence_for


def expected_media(event: ContentEvent, audio_of_video: bool) -> tuple[str, ...]:
    """The media part ids a content item will report: its parts, plus the sound of each video."""
    parts = [part.part_id for part in event.parts]
    if audio_of_video:
        parts += [audio_part_of(part.part_id) for part in event.parts if part.kind == "video"]
    return tuple(parts)


@dataclass
class Content:
    """What fusion keeps of one content item (pickled into keyed state)."""

    content_key: str
    event: ContentEvent | None = None  # None until the item's own text findings declare it
    ingested_at: int = 0
    expected: tuple[str, ...] = ()  # media part ids
    texts: dict[str, TextFindings] = field(default_factory=dict)  # by part_id
    media: dict[str, MediaFindings] = field(default_factory=dict)  # latest findings by part_id
    closed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # media part -> its text parts
    fired: dict[str, tuple[int, str]] = field(default_factory=dict)  # rule_id -> (revision, evidence)
    deadline_at: int = 0  # processing time (epoch ms) when unknowns resolve with parts missing
    timed_out: bool = False  # the deadline passed before every part was in
    forget_at: int = 0  # processing time when a complete item leaves state
    reported: str = ""  # digest of the last FusedAnalysis sent

    def add(self, record: TextFindings | MediaFindings | PartClosed, event: ContentEvent | None = None,
            ingested_at: int = 0, audio_of_video: bool = True) -> None:
        """Take one record in. The item's own text findings come with its event (the declaration)."""
        if isinstance(record, TextFindings):
            self.texts[record.part_id] = record
            if record.part_id == TEXT_PART and event is not None and self.event is None:
                self.event, self.ingested_at = event, ingested_at
                self.expected = expected_media(event, audio_of_video)
        elif isinstance(record, MediaFindings):
            current = self.media.get(record.part_id)
            if current is None or _rank(record) >= _rank(current):
                self.media[record.part_id] = record
        else:
            self.closed[record.part_id] = record.text_parts

    @property
    def declared(self) -> bool:
        return self.event is not None

    def is_closed(self, part: str) -> bool:
        """Its final findings and its close are in (in either order)."""
        found = self.media.get(part)
        return part in self.closed and found is not None and found.status != "partial"

    def pending(self) -> tuple[str, ...]:
        """Parts not in yet: media parts not closed, and text read or heard in them not arrived."""
        if self.event is None:
            return (TEXT_PART,)
        missing = [part for part in self.expected if not self.is_closed(part)]
        missing += [text for texts in self.closed.values() for text in texts if text not in self.texts]
        return tuple(missing)

    @property
    def complete(self) -> bool:
        return self.declared and not self.pending()

    def facts(self, closed_world: bool = False) -> FusedFacts:
        """What the rules see now; in the closed world (and after the deadline) nothing is pending."""
        closed_world = closed_world or self.timed_out
        assert self.event is not None, "facts of an undeclared item"
        pending = set(self.pending())
        kinds = {part.part_id: part.kind for part in self.event.parts}
        kinds.update({audio_part_of(p.part_id): "audio" for p in self.event.parts if p.kind == "video"})
        audio = {part for part in self.expected if kinds.get(part) == "audio"}
        speech = frozenset(text for part in audio for text in self.closed.get(part, ()))
        speech |= {text for text in self.texts if any(text.startswith(f"{part}.") for part in audio)}
        texts = sorted(self.texts.values(), key=lambda found: (found.part_id != TEXT_PART, found.part_id))
        event = self.event
        return FusedFacts(
            platform=event.platform, author=event.author, source=event.source,
            published_at=event.published_at, lang=event.lang,
            texts=tuple(texts),
            media=tuple(self.media[key] for key in sorted(self.media)),
            text_done=closed_world or not pending,
            visual_done=closed_world or not any(kinds.get(part) in ("image", "video") for part in pending),
            audio_done=closed_world or all(self.is_closed(part) for part in audio),
            speech_done=closed_world or not (pending & (audio | speech)),
            speech_parts=speech,
            missing=tuple(sorted(pending)),
        )

    def fused(self, fused_at: int, fired: Iterable[str]) -> FusedAnalysis:
        failed = tuple(sorted(part for part, found in self.media.items() if found.status == "error"))
        parts = tuple(PartState(part, _part_status(self, part)) for part in (TEXT_PART, *self.expected))
        event = self.event
        return FusedAnalysis(
            content_key=self.content_key,
            complete=self.complete,
            timed_out=self.timed_out,
            parts=parts,
            missing=self.pending(),
            failed=failed,
            platform=event.platform if event else None,
            source=event.source if event else None,
            author=event.author if event else None,
            published_at=event.published_at if event else None,
            collected_at=event.collected_at if event else 0,
            texts=tuple(self.texts[key] for key in sorted(self.texts)),
            media=tuple(self.media[key] for key in sorted(self.media)),
            fired=tuple(sorted(fired)),
            fused_at=fused_at,
        )


def _rank(findings: MediaFindings) -> tuple[int, int]:
    """Final findings replace partial ones; among partials the later analysis wins."""
    return (0 if findings.status == "partial" else 1, findings.analysed_at)


def _part_status(content: Content, part: str) -> str:
    if part == TEXT_PART:
        return "ok" if content.event is not None else "missing"
    found = content.media.get(part)
    if content.is_closed(part):
        return "error" if found.status == "error" else "ok"
    return "partial" if found is not None else "missing"


def matches(content: Content, index: Any, now_ms: int, closed_world: bool = False) -> list[RuleMatch]:
    """The rules of `index` (a udfs.query.RuleIndex) that now hold on this item and whose
    evidence is new or changed since the last match: each becomes a RuleMatch with the next
    revision. Only the index's candidates for the facts present are evaluated."""
    if content.event is None:
        return []
    facts = content.facts(closed_world)
    found: list[RuleMatch] = []
    for compiled in index.candidates_for(facts.labels()):
        for step, node in enumerate(compiled.steps):
            if evaluate(node, facts) is not True:
                continue
            evidence = evidence_for(node, facts)
            digest = encode(evidence)
            key = compiled.rule.rule_id if step == 0 else f"{compiled.rule.rule_id}#{step}"
            revision, last = content.fired.get(key, (0, ""))
            if digest == last:
                continue
            content.fired[key] = (revision + 1, digest)
            found.append(RuleMatch(
                rule=compiled.rule, event=content.event, evidence=evidence, revision=revision + 1,
                missing=facts.missing if (closed_world or content.timed_out) else (),
                ingested_at=content.ingested_at, analysed_at=_analysed_at(content), matched_at=now_ms,
                phashes=_phashes(content), entities=_entity_names(facts), step=step,
            ))
    return found


def _analysed_at(content: Content) -> int:
    times = [found.analysed_at for found in content.texts.values()]
    times += [found.analysed_at for found in content.media.values()]
    return max(times, default=0)


def _phashes(content: Content) -> tuple[str, ...]:
    return tuple(sorted({found.phash for found in content.media.values() if found.phash}))


def _entity_names(facts: FusedFacts) -> tuple[str, ...]:
    """Entity names in the item (tracked names canonical), for windows grouped by entity."""
    return tuple(sorted({entity.name or normalize(entity.text) for entity in facts.entities()
                         if entity.type not in ("url", "emoji")}))


def with_fired(content: Content) -> tuple[str, ...]:
    """Rule ids that fired on this item (sequence steps excluded)."""
    return tuple(sorted(key for key in content.fired if "#" not in key))
