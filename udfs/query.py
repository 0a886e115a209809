"""Query matching at scale: every term of every active rule found in one pass, rules indexed by term.

Compiled once per rule change (RuleIndex). A text's words, in matching form and without sigils,
are joined by single spaces into a stream; each query term or phrase becomes the key
" word1 word2 " (a wildcard drops the trailing space) of one Aho-Corasick automaton, so one scan
finds every whole-word occurrence of every pattern, and punctuation or line breaks between the
words of a phrase do not matter. The tracked names of the rules' gazetteers ride in the same
automaton.

Only rules that one of the text's hits could satisfy are evaluated: a rule whose condition needs
a term hit is indexed under the terms of one branch that must hit (its anchors); the few that
need none (`NOT x`, `platform:x AND sentiment > 0.5`) are evaluated on every text. So the cost
per text follows the text and its hits, not the number of rules.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

from schemas.condition import (
    And,
    EntityRef,
    Measure,
    Near,
    Node,
    Or,
    Pattern,
    Phrase,
    Said,
    Seen,
    Term,
    parse,
    patterns_of,
    text_pattern,
    walk,
)
from schemas.findings import Entity, TermHit, TextFindings
from schemas.rule import Rule
from schemas.textnorm import SIGILS, WORD, Folded
from udfs.evaluate import FusedFacts, entity_anchor, evaluate, evidence_for

_NOT_BEFORE_A_TAG = set("/.:&=?#@$-_")
_SIGIL_TYPES = {"$": "ticker", "@": "account"}  # a rule's $term or @term is a tracked name


@dataclass(frozen=True)
class _Target:
    """What a key of the automaton stands for: a query pattern or a tracked name."""

    label: str  # the pattern's label, or the tracked entity's canonical name
    sigil: str  # the first word must carry this sigil ("" for any)
    wildcard: bool
    key_length: int
    entity_type: str | None = None  # set for tracked names


@dataclass(frozen=True)
class Words:
    """A text's words in matching form; spans are folded offsets."""

    folded: Folded
    words: tuple[str, ...]  # without sigils
    sigils: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, folded: Folded) -> Words:
        words, sigils, spans = [], [], []
        text = folded.text
        for match in WORD.finditer(text):
            word, start = match.group(), match.start()
            sigil = word[0] if word[0] in SIGILS else ""
            if sigil and start and (text[start - 1].isalnum() or text[start - 1] in _NOT_BEFORE_A_TAG):
                sigil = ""  # "example.com/#tag", "press@site.com", "US$10": not a tag, handle or cashtag
            words.append(word[len(sigil):])
            sigils.append(sigil)
            spans.append(match.span())
        return cls(folded, tuple(words), tuple(sigils), tuple(spans))

    def original_span(self, first: int, last: int) -> tuple[int, int]:
        """Original character span of words first..last (inclusive)."""
        return self.folded.span(self.spans[first][0], self.spans[last][1])


class Scanner:
    def __init__(self, patterns: Iterable[Pattern], tracked: Iterable[tuple[str, str, str]] = ()) -> None:
        """patterns: query terms and phrases; tracked: (alias, canonical name, entity type)."""
        keys: dict[str, list[_Target]] = {}
        for pattern in patterns:
            key, sigil = _key(pattern)
            keys.setdefault(key, []).append(_Target(pattern.label, sigil, pattern.wildcard, len(key)))
        for alias, name, entity_type in tracked:
            pattern = text_pattern(alias)
            if pattern is not None:
                key, sigil = _key(pattern)
                keys.setdefault(key, []).append(_Target(name, sigil, False, len(key), entity_type))
        self.size = len(keys)
        self.automaton = ahocorasick.Automaton()
        for key, targets in keys.items():
            self.automaton.add_word(key, tuple(targets))
        if keys:
            self.automaton.make_automaton()

    def scan(self, text: Words, original: str) -> tuple[list[TermHit], list[Entity]]:
        if not self.size or not text.words:
            return [], []
        starts, offset = [], 1
        for word in text.words:
            starts.append(offset)
            offset += len(word) + 1
        stream = " " + " ".join(text.words) + " "
        hits, entities = [], []
        for end, targets in self.automaton.iter(stream):
            for target in targets:
                # the key starts with the space before its first word
                first = bisect_right(starts, end - target.key_length + 2) - 1
                last = bisect_right(starts, end if target.wildcard else end - 1) - 1
                if target.sigil and text.sigils[first] != target.sigil:
                    continue
                start, stop = text.original_span(first, last)
                if target.entity_type is None:
                    hits.append(TermHit(target.label, start, stop, first, last + 1))
                else:
                    entities.append(Entity(original[start:stop], target.entity_type, start, stop, target.label))
        hits.sort(key=lambda hit: (hit.start, hit.term))
        return hits, _outermost(entities)


def _outermost(entities: list[Entity]) -> list[Entity]:
    """One entity per mention: "Tesla Motors" hides the "Tesla" inside it when both are aliases."""
    kept: list[Entity] = []
    for entity in sorted(entities, key=lambda e: (e.start, -e.end)):
        if not any(k.name == entity.name and k.start <= entity.start and entity.end <= k.end for k in kept):
            kept.append(entity)
    return kept


def _key(pattern: Pattern) -> tuple[str, str]:
    if isinstance(pattern, Term):
        sigil = pattern.text[0] if pattern.text[0] in SIGILS else ""
        words = (pattern.text[len(sigil):],)
    else:
        sigil, words = "", pattern.words
    return " " + " ".join(words) + ("" if pattern.wildcard else " "), sigil


def Facts(findings: TextFindings, platform: str, author: str = "", source: str = "") -> FusedFacts:
    """What rules are evaluated on when there is one text and nothing else to wait for."""
    return FusedFacts.of_text(findings, platform, author, source)


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    node: Node
    needs_names: bool  # evaluating it may need the NE chunker's names
    then: Node | None = None  # a sequence's second step
    # Label sets of which each must meet the present facts for the rule to hold (one per
    # anchored conjunct): a cheap set test that spares evaluating most candidates.
    required: tuple[frozenset[str], ...] = ()

    @property
    def steps(self) -> tuple[Node, ...]:
        return (self.node,) if self.then is None else (self.node, self.then)


class RuleIndex:
    """The active rules, compiled: one scanner for all their terms and names, rules by anchor."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: list[CompiledRule] = []
        patterns: set[Pattern] = set()
        tracked: set[tuple[str, str, str]] = set()
        self.by_anchor: dict[str, list[int]] = {}
        self.unanchored: list[int] = []
        for rule in rules:
            if not rule.active:
                continue
            node = parse(rule.condition)
            then = parse(rule.window.then) if rule.window is not None and rule.window.then else None
            index = len(self.rules)
            compiled = CompiledRule(rule, node, any(_needs_names(step) for step in (node, then) if step), then,
                                    _required(node) if then is None else ())
            self.rules.append(compiled)
            anchors: set[str] | None = set()
            for step in compiled.steps:
                patterns |= patterns_of(step)
                tracked |= _tracked_names(rule, step)
                found = _anchors(step)
                anchors = None if found is None or anchors is None else anchors | found
            if anchors is None:
                self.unanchored.append(index)
            for label in anchors or ():
                self.by_anchor.setdefault(label, []).append(index)
        self.scanner = Scanner(patterns, tracked)
        # What speech is searched for: plain words and phrases (no wildcards, hashtags or tickers).
        self.spoken = tuple(sorted({key.strip() for key, sigil in map(_key, patterns)
                                    if not sigil and key.endswith(" ")}))

    def candidates(self, hits: Iterable[TermHit], entities: Iterable[Entity]) -> list[CompiledRule]:
        """The rules these hits and tracked names could satisfy, plus the unanchored ones."""
        labels = {hit.term for hit in hits}
        labels.update(entity_anchor(entity.name) for entity in entities if entity.name is not None)
        return self.candidates_for(labels)

    def candidates_for(self, labels: Iterable[str]) -> list[CompiledRule]:
        """The rules these present facts (FusedFacts.labels) could satisfy, plus the unanchored."""
        labels = labels if isinstance(labels, (set, frozenset)) else set(labels)
        chosen = set(self.unanchored)
        for label in labels:
            chosen.update(self.by_anchor.get(label, ()))
        found = (self.rules[i] for i in sorted(chosen))
        return [rule for rule in found if all(not need.isdisjoint(labels) for need in rule.required)]

    def needs_names(self, hits: Iterable[TermHit], entities: Iterable[Entity]) -> bool:
        """Whether a rule that could fire on this text asks for the NE chunker's names."""
        return any(rule.needs_names for rule in self.candidates(hits, entities))

    def fired(self, facts: FusedFacts) -> list[CompiledRule]:
        return [rule for rule in self.candidates_for(facts.labels()) if evaluate(rule.node, facts) is True]


def matches_everything(rule: Rule) -> bool:
    """Whether the rule holds on an item with no text and no media at all (`NOT scam`,
    `sentiment > -1`, `faces < 3`): it would alert on nearly everything, which deserves a warning."""
    from schemas.findings import Sentiment

    empty = TextFindings("x:0", Sentiment(0.0, 0.0, 1.0, 0.0), flags=("empty",))
    return holds(parse(rule.condition), FusedFacts.of_text(empty, "x"))


def holds(node: Node, facts: FusedFacts) -> bool:
    """Two-valued: whether the condition holds on findings with nothing pending."""
    return evaluate(node, facts) is True


def evidence_hits(node: Node, facts: FusedFacts) -> tuple[TermHit, ...]:
    """The hits of the terms the condition uses positively (not under NOT)."""
    return evidence_for(node, facts).hits


def _anchors(node: Node) -> set[str] | None:
    """Fact labels (FusedFacts.labels) of which at least one must be present for the condition
    to hold; None when none must."""
    if isinstance(node, (Term, Phrase)):
        return {node.label}
    if isinstance(node, EntityRef) and node.name is not None:
        # written out (the chunker's name is made of these words) or by a tracked alias
        return {text_pattern(node.name, keep_sigil=False).label, entity_anchor(node.name)}
    if isinstance(node, Said):  # in a transcript, or spotted
        return {node.pattern.label, f"said:{node.pattern.label}"}
    if isinstance(node, Seen):
        return {f"{_SEEN_PREFIX[node.name]}:{node.arg}"}
    if isinstance(node, Measure) and node.name in _MEASURE_LABEL and _needs_presence(node):
        label = _MEASURE_LABEL[node.name]
        return {f"{label}:{node.arg}" if node.arg else label}
    if isinstance(node, Near):
        return _anchors(node.left)
    if isinstance(node, And):
        anchored = [a for a in map(_anchors, node.items) if a is not None]
        return min(anchored, key=_commonness) if anchored else None
    if isinstance(node, Or):
        branches = [_anchors(item) for item in node.items]
        if any(branch is None for branch in branches):
            return None
        return set().union(*branches)
    return None


def _needs_names(node: Node) -> bool:
    return any(
        isinstance(current, EntityRef) and (current.name is not None or current.type == "name")
        for current in walk(node)
    )


def _tracked_names(rule: Rule, node: Node) -> set[tuple[str, str, str]]:
    tracked = set()
    for entity in rule.entities:
        for alias in (entity.name, *entity.aliases):
            tracked.add((alias, entity.name, entity.type))
    for current in walk(node):
        if isinstance(current, Term) and not current.wildcard and current.text[0] in _SIGIL_TYPES:
            tracked.add((current.text, current.text, _SIGIL_TYPES[current.text[0]]))
    return tracked


def _required(node: Node) -> tuple[frozenset[str], ...]:
    items = node.items if isinstance(node, And) else (node,)
    return tuple(frozenset(found) for found in map(_anchors, items) if found is not None)


def _commonness(labels: set[str]) -> tuple[int, int]:
    """Which anchor set of a conjunction to index a rule under: the one likely to be present
    least often. Without corpus statistics: what the media analysis reports (objects, faces,
    speech) is common, and short words are commoner than long words and phrases (Zipf)."""
    media = sum(label.split(":")[0] in _MEDIA_LABELS for label in labels)
    return media, len(labels) * 100 - min(len(label) for label in labels)


_MEDIA_LABELS = frozenset({"object", "scene", "faces", "speech"})
_SEEN_PREFIX = {"image_match": "image", "audio_match": "clip", "scene": "scene"}
_MEASURE_LABEL = {"object": "object", "scene": "scene", "faces": "faces", "speech_share": "speech"}


def _needs_presence(node: Measure) -> bool:
    """Whether the comparison fails when the thing is absent (its value 0)."""
    return (node.op == ">" and node.value >= 0) or (node.op in (">=", "=") and node.value > 0)
