"""Three-valued rule evaluation over the fused findings of one content item.

FusedFacts is what rules see: every text of the item (the post, OCR, transcripts), its media
findings, and which of them are settled. `evaluate` answers True, False or None (not decided by
what has arrived so far) with Kleene logic: a term is true as soon as any text has it and false
only once no text can still come; a maximum over parts (`object("person") >= 2`, `faces`) is
decided as soon as one part shows enough, or once every part is in. `evidence_for` lists what a
rule that holds used positively. udfs/fusion.py builds the facts; udfs/query.py indexes rules by
the fact labels (`FusedFacts.labels`) they need.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from schemas.alert import Evidence
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
from schemas.findings import TEXT_PART, Entity, TermHit, TextFindings
from schemas.media import MediaFindings
from schemas.textnorm import normalize

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq,
            "!=": operator.ne}
Truth = bool | None  # None: not decided by the findings so far


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
        return _kleene(node.items, facts, decisive=False)
    if isinstance(node, Or):
        return _kleene(node.items, facts, decisive=True)
    if isinstance(node, Not):
        value = evaluate(node.item, facts)
        return None if value is None else not value
    return _fact(node, facts)


def _kleene(items: tuple[Node, ...], facts: FusedFacts, decisive: bool) -> Truth:
    """AND (decisive False) or OR (decisive True): one decisive item decides; else any unknown
    item leaves it unknown."""
    outcome: Truth = not decisive
    for item in items:
        value = evaluate(item, facts)
        if value is decisive:
            return decisive
        if value is None:
            outcome = None
    return outcome


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
