"""Fusion: every part's findings of one content item, joined, and rules evaluated over the whole.

Pure: the Flink adapter (udfs/fuse_operator.py) keeps one `Content` per content key in keyed
state and passes the clock in. A content item declares its parts (the event arrives with the
findings of its own text); media parts report progressively, and a media part is closed once its
final findings are in and the text read or heard in it (OCR, transcripts) has arrived.

Rules are evaluated on every partial result with three-valued logic: each fact is true, false or
unknown (None) given what has arrived so far. A term is true as soon as any text part has it and
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

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from schemas.alert import Evidence
from schemas.codec import encode
from schemas.condition import (
    And,
    ClassifierCompare,
    EntityRef,
    Field,
    Measure,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Said,
    Seen,
    SentimentCompare,
    Term,
    TimeOfDay,
    positive,
    text_pattern,
)
from schemas.content import ContentEvent
from schemas.findings import TEXT_PART, Entity, TermHit, TextFindings, audio_part_of
from schemas.fused import FusedAnalysis, PartState
from schemas.media import MediaFindings
from schemas.pipeline import PartClosed, RuleMatch
from schemas.textnorm import normalize

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq,
            "!=": operator.ne}
Truth = bool | None  # None: not decided by the findings so far


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
        return FusedFacts.of(self, closed_world or self.timed_out)

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


@dataclass
class FusedFacts:
    """What rules are evaluated on: the findings of every part of one item, and what is settled.

    `text_done`: no text part can still arrive (the item's own, OCR, transcripts); `visual_done`:
    every image and video is closed; `audio_done`: every audio part is closed; `speech_done`:
    audio_done and every transcript arrived. In the closed world all four hold."""

    platform: str
    author: str
    source: str
    published_at: int
    lang: str | None  # as the platform declared it
    texts: tuple[TextFindings, ...]  # the item's own first
    media: tuple[MediaFindings, ...]
    text_done: bool
    visual_done: bool
    audio_done: bool
    speech_done: bool
    speech_parts: frozenset[str] = frozenset()  # text part ids heard in audio
    missing: tuple[str, ...] = ()
    hits: dict[str, list[TermHit]] = field(default_factory=dict)  # by term, every text part

    @classmethod
    def of(cls, content: Content, closed_world: bool) -> FusedFacts:
        assert content.event is not None, "facts of an undeclared item"
        pending = set(content.pending())
        kinds = {part.part_id: part.kind for part in content.event.parts}
        kinds.update({audio_part_of(p.part_id): "audio" for p in content.event.parts if p.kind == "video"})
        audio = {part for part in content.expected if kinds.get(part) == "audio"}
        speech = frozenset(text for part in audio for text in content.closed.get(part, ()))
        speech |= {text for text in content.texts if any(text.startswith(f"{part}.") for part in audio)}
        texts = sorted(content.texts.values(), key=lambda found: (found.part_id != TEXT_PART, found.part_id))
        event = content.event
        return cls(
            platform=event.platform, author=event.author, source=event.source,
            published_at=event.published_at, lang=event.lang,
            texts=tuple(texts),
            media=tuple(content.media[key] for key in sorted(content.media)),
            text_done=closed_world or not pending,
            visual_done=closed_world or not any(kinds.get(part) in ("image", "video") for part in pending),
            audio_done=closed_world or all(content.is_closed(part) for part in audio),
            speech_done=closed_world or not (pending & (audio | speech)),
            speech_parts=speech,
            missing=tuple(sorted(pending)),
        )

    @classmethod
    def of_text(cls, findings: TextFindings, platform: str, author: str = "", source: str = "",
                published_at: int = 0) -> FusedFacts:
        """One text on its own, nothing pending (`trackius analyze text`, the text-only tests)."""
        return cls(platform, author, source, published_at, None, (findings,), (), True, True, True, True)

    def __post_init__(self) -> None:
        for found in self.texts:
            for hit in found.hits:
                self.hits.setdefault(hit.term, []).append(hit)

    @property
    def main(self) -> TextFindings | None:
        first = self.texts[0] if self.texts else None
        return first if first is not None and first.part_id == TEXT_PART else None

    def entities(self) -> Iterable[Entity]:
        for found in self.texts:
            yield from found.entities

    def visual(self) -> Iterable[MediaFindings]:
        return (found for found in self.media if found.kind in ("image", "video"))

    def audio(self) -> Iterable[MediaFindings]:
        return (found for found in self.media if found.kind == "audio" and found.audio is not None)

    def labels(self) -> set[str]:
        """Fact labels present, for the rule index: term hits, tracked names, media facts."""
        found = set(self.hits)
        found.update(entity_anchor(entity.name) for entity in self.entities() if entity.name is not None)
        for media in self.visual():
            found.update(f"image:{normalize(match.ref_id)}" for match in media.matches)
            found.update(f"image:{normalize(match.name)}" for match in media.matches)
            found.update(f"object:{label}" for label in _object_counts(media))
            found.update(f"scene:{label}" for label in _scene_scores(media))
            if _faces(media):
                found.add("faces")
        for media in self.audio():
            found.update(f"clip:{normalize(clip.ref_id)}" for clip in media.audio.clips)
            found.update(f"clip:{normalize(clip.name)}" for clip in media.audio.clips)
            found.update(_said_label(keyword.phrase) for keyword in media.audio.keywords)
            if media.audio.speech_share > 0:
                found.add("speech")
        return found


def entity_anchor(name: str) -> str:
    return "entity:" + normalize(name)


def _said_label(phrase: str) -> str:
    pattern = text_pattern(phrase, keep_sigil=False)
    return f"said:{pattern.label if pattern else phrase}"


# --- three-valued evaluation ------------------------------------------------------------------

def evaluate(node: Node, facts: FusedFacts) -> Truth:
    """True, False, or None while the findings so far do not decide it (Kleene logic)."""
    if isinstance(node, And):
        outcome: Truth = True
        for item in node.items:
            value = evaluate(item, facts)
            if value is False:
                return False
            if value is None:
                outcome = None
        return outcome
    if isinstance(node, Or):
        outcome = False
        for item in node.items:
            value = evaluate(item, facts)
            if value is True:
                return True
            if value is None:
                outcome = None
        return outcome
    if isinstance(node, Not):
        value = evaluate(node.item, facts)
        return None if value is None else not value
    return _fact(node, facts)


def _fact(node: Node, facts: FusedFacts) -> Truth:
    if isinstance(node, (Term, Phrase)):
        return _found(node.label in facts.hits, facts.text_done)
    if isinstance(node, Near):
        return _found(any(_positions(node, found) for found in facts.texts), facts.text_done)
    if isinstance(node, SentimentCompare):
        score = _sentiment(facts)
        return None if score is None else _COMPARE[node.op](score, node.value)
    if isinstance(node, ClassifierCompare):
        score = facts.main.classifiers.get(node.name) if facts.main else None
        return score is not None and _COMPARE[node.op](score, node.value)
    if isinstance(node, Field):
        return _field(node, facts)
    if isinstance(node, EntityRef):
        return _found(any(_is_entity(entity, node) for entity in facts.entities()), facts.text_done)
    if isinstance(node, TimeOfDay):
        minute = _minute_of_day(facts.published_at, node.zone)
        inside = node.start <= minute < node.end if node.start < node.end else minute >= node.start or minute < node.end
        return inside
    if isinstance(node, Measure):
        return _measure(node, facts)
    if isinstance(node, Seen):
        return _seen(node, facts)
    if isinstance(node, Said):
        heard = any(node.pattern.label in _labels_of(found) for found in facts.texts
                    if found.part_id in facts.speech_parts)
        heard = heard or any(_said_label(keyword.phrase) == f"said:{node.pattern.label}"
                             for media in facts.audio() for keyword in media.audio.keywords)
        return _found(heard, facts.speech_done)
    raise TypeError(f"unknown condition node {node!r}")


def _found(present: bool, done: bool) -> Truth:
    """A fact that more findings can only make true: true once seen, false once nothing can come."""
    return True if present else (False if done else None)


def _growing(value: float, op: str, bound: float, done: bool) -> Truth:
    """Compare a value that more findings can only raise (a maximum over parts)."""
    holds = _COMPARE[op](value, bound)
    if done:
        return holds
    if op in (">", ">=") and holds:
        return True
    if op in ("<", "<=") and not holds:
        return False
    return None


def _sentiment(facts: FusedFacts) -> float | None:
    """The item's own text's sentiment; for an item without text, that of the text read or heard
    in its media (weighted by length), known once all of it is in."""
    main = facts.main
    if main is not None and "empty" not in main.flags:
        return main.sentiment.compound
    if not facts.text_done:
        return None
    others = [found for found in facts.texts if found.part_id != TEXT_PART and found.text_chars]
    total = sum(found.text_chars for found in others)
    return sum(found.sentiment.compound * found.text_chars for found in others) / total if total else 0.0


def _field(node: Field, facts: FusedFacts) -> Truth:
    if node.name == "platform":
        return facts.platform == node.value
    if node.name == "lang":
        lang = facts.main.lang if facts.main else facts.lang
        return (lang or "").split("-")[0] == node.value
    if node.name == "domain":  # the domain itself or any subdomain of it
        domains = [entity.text.lower() for entity in facts.entities() if entity.type == "domain"]
        present = any(domain == node.value or domain.endswith("." + node.value) for domain in domains)
        return _found(present, facts.text_done)
    actual = normalize(facts.author if node.name == "author" else facts.source).lstrip("@")
    if node.value.endswith("*"):
        return actual.startswith(node.value[:-1])
    return actual == node.value


def _measure(node: Measure, facts: FusedFacts) -> Truth:
    if node.name == "hour":
        return _COMPARE[node.op](_minute_of_day(facts.published_at, "UTC") // 60, node.value)
    if node.name == "speech_share":  # only final findings: a partial share can still fall
        shares = [media.audio.speech_share for media in facts.audio() if media.status != "partial"]
        return _growing(max(shares, default=0.0), node.op, node.value, facts.audio_done)
    if node.name == "faces":
        value = max((_faces(media) for media in facts.visual()), default=0)
    elif node.name == "object":
        value = max((_object_counts(media).get(node.arg, 0) for media in facts.visual()), default=0)
    else:  # scene score
        value = max((_scene_scores(media).get(node.arg, 0.0) for media in facts.visual()), default=0.0)
    return _growing(value, node.op, node.value, facts.visual_done)


def _seen(node: Seen, facts: FusedFacts) -> Truth:
    if node.name == "image_match":
        present = any(_named(match.ref_id, match.name, node.arg) for media in facts.visual() for match in media.matches)
        return _found(present, facts.visual_done)
    if node.name == "audio_match":
        present = any(_named(clip.ref_id, clip.name, node.arg) for media in facts.audio() for clip in media.audio.clips)
        return _found(present, facts.audio_done)
    present = any(node.arg in _scene_scores(media) for media in facts.visual())
    return _found(present, facts.visual_done)


def _named(ref_id: str, name: str, wanted: str) -> bool:
    return wanted in (normalize(ref_id), normalize(name))


def _faces(media: MediaFindings) -> int:
    return media.video.faces_peak if media.video is not None else len(media.faces)


def _object_counts(media: MediaFindings) -> dict[str, int]:
    """The most of each COCO class in one image or sampled frame."""
    if media.video is not None:
        return {normalize(found.label): found.peak_count for found in media.video.objects}
    counts: dict[str, int] = {}
    for detection in media.objects:
        label = normalize(detection.label)
        counts[label] = counts.get(label, 0) + 1
    return counts


def _scene_scores(media: MediaFindings) -> dict[str, float]:
    """Best score per scene label; an ImageNet label with synonyms ("seashore, coast") answers to each."""
    scores: dict[str, float] = {}
    labels = media.video.labels if media.video is not None else media.labels
    for label in labels:
        for name in _label_names(label.label):
            scores[name] = max(scores.get(name, 0.0), label.score)
    return scores


@lru_cache(maxsize=4096)
def _label_names(label: str) -> tuple[str, ...]:
    return tuple(normalize(name).strip() for name in (label, *label.split(",")) if name.strip())


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _minute_of_day(epoch_ms: int, zone: str) -> int:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone(_zone(zone))
    return moment.hour * 60 + moment.minute


def _labels_of(found: TextFindings) -> frozenset[str]:
    return frozenset(hit.term for hit in found.hits)


def _positions(node: Node, found: TextFindings) -> list[tuple[int, int]]:
    """Word spans (first, end) where a positional query matches in one text."""
    if isinstance(node, (Term, Phrase)):
        return [(hit.word, hit.word_end) for hit in found.hits if hit.term == node.label]
    if isinstance(node, Or):
        return [span for item in node.items for span in _positions(item, found)]
    if isinstance(node, Near):
        lefts, rights = _positions(node.left, found), _positions(node.right, found)
        return [
            (min(a[0], b[0]), max(a[1], b[1]))
            for a in lefts for b in rights
            if 0 <= max(b[0] - a[1], a[0] - b[1]) <= node.distance
        ]
    raise TypeError(f"not a positional query: {node!r}")


def _is_entity(entity: Entity, ref: EntityRef) -> bool:
    if ref.type is not None:
        return entity.type == ref.type
    return ref.name == normalize(entity.text) or (entity.name is not None and ref.name == normalize(entity.name))


# --- evidence and matches ---------------------------------------------------------------------

def evidence_for(node: Node, facts: FusedFacts) -> Evidence:
    """What made a rule fire: the findings its condition uses positively (not under NOT)."""
    used = list(positive(node))
    wanted = {current.label for current in used if isinstance(current, (Term, Phrase))}
    said = {current.pattern.label for current in used if isinstance(current, Said)}
    hits = tuple(hit for found in facts.texts for hit in found.hits
                 if hit.term in wanted or (hit.term in said and found.part_id in facts.speech_parts))
    objects: dict[str, int] = {}
    scenes: dict[str, float] = {}
    faces = None
    for current in used:
        if isinstance(current, Measure) and current.name == "object":
            objects[current.arg] = max((_object_counts(m).get(current.arg, 0) for m in facts.visual()), default=0)
        elif isinstance(current, (Measure, Seen)) and current.name == "scene":
            scenes[current.arg] = max((_scene_scores(m).get(current.arg, 0.0) for m in facts.visual()), default=0.0)
        elif isinstance(current, Measure) and current.name == "faces":
            faces = max((_faces(media) for media in facts.visual()), default=0)
    images = {current.arg for current in used if isinstance(current, Seen) and current.name == "image_match"}
    clips = {current.arg for current in used if isinstance(current, Seen) and current.name == "audio_match"}
    speech = any(isinstance(current, Measure) and current.name == "speech_share" for current in used)
    return Evidence(
        hits=hits,
        sentiment=_sentiment(facts) if any(isinstance(c, SentimentCompare) for c in used) else None,
        objects=objects,
        faces=faces,
        scenes={label: round(score, 4) for label, score in scenes.items()},
        images=tuple(sorted({m.ref_id for media in facts.visual() for m in media.matches
                             if any(_named(m.ref_id, m.name, want) for want in images)})),
        clips=tuple(sorted({c.ref_id for media in facts.audio() for c in media.audio.clips
                            if any(_named(c.ref_id, c.name, want) for want in clips)})),
        said=tuple(sorted(label for label in said if any(
            hit.term == label for found in facts.texts if found.part_id in facts.speech_parts for hit in found.hits))),
        speech_share=max((m.audio.speech_share for m in facts.audio()), default=0.0) if speech else None,
    )


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
