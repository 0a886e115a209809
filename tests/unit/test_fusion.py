"""Fusion: findings of every part joined per content item, rules decided with three-valued logic."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.condition import parse
from schemas.content import ContentEvent, MediaPart
from schemas.findings import Entity, Sentiment, TermHit, TextFindings
from schemas.media import (
    AudioSummary,
    Detection,
    KnownClip,
    KnownImage,
    MediaFindings,
    SceneLabel,
    VideoObject,
    VideoSummary,
)
from schemas.pipeline import PartClosed
from schemas.rule import Rule
from udfs.evaluate import FusedFacts, evaluate
from udfs.fusion import Content, matches, with_fired
from udfs.query import RuleIndex

NOON = int(datetime(2026, 11, 26, 12, 30, tzinfo=UTC).timestamp() * 1000)


def event(*parts: MediaPart, text: str = "post", published_at: int = NOON) -> ContentEvent:
    return ContentEvent("x:1", "x", "timeline", "alice", published_at, published_at + 10, text=text, parts=parts)


IMAGE = MediaPart("img", "image", "https://example.com/a.jpg")
VIDEO = MediaPart("vid", "video", "https://example.com/a.mp4")
AUDIO = MediaPart("pod", "audio", "https://example.com/a.mp3")


def text(part_id: str = "text", *terms: str, compound: float = 0.0, entities: tuple[Entity, ...] = (),
         flags: tuple[str, ...] = ()) -> TextFindings:
    hits = tuple(TermHit(term, 0, len(term), i, i + 1) for i, term in enumerate(terms))
    return TextFindings("x:1", Sentiment(compound, 0.0, 1.0, 0.0), hits=hits, entities=entities, flags=flags,
                        text_chars=40, part_id=part_id, analysed_at=5)


def image(status: str = "ok", objects: tuple[str, ...] = (), faces: int = 0, refs: tuple[str, ...] = (),
          labels: tuple[tuple[str, float], ...] = (), analysed_at: int = 10) -> MediaFindings:
    return MediaFindings(
        "x:1", "img", "image", IMAGE.uri, status,
        objects=tuple(Detection(label, 0.9, (0, 0, 1, 1)) for label in objects),
        faces=tuple(Detection("face", 0.9, (0, 0, 1, 1)) for _ in range(faces)),
        labels=tuple(SceneLabel(label, score) for label, score in labels),
        matches=tuple(KnownImage(ref, ref.title(), "phash", 3) for ref in refs),
        phash="00ff00ff00ff00ff", analysed_at=analysed_at)


def audio(status: str = "ok", clips: tuple[str, ...] = (), speech_share: float = 0.0, part_id: str = "pod",
          analysed_at: int = 10) -> MediaFindings:
    summary = AudioSummary(10.0, 10.0, "flac", 16000, 1, speech_share=speech_share,
                           clips=tuple(KnownClip(c, c.title(), "landmarks", 0.5, 0.0, 0.0) for c in clips))
    return MediaFindings("x:1", part_id, "audio", AUDIO.uri, status, audio=summary, analysed_at=analysed_at)


def declared(*parts: MediaPart, post: TextFindings | None = None, **kwargs) -> Content:
    content = Content("x:1")
    content.add(post or text(), event(*parts, **kwargs), ingested_at=1)
    return content


def truth(condition: str, content: Content, closed_world: bool = False):
    return evaluate(parse(condition), content.facts(closed_world))


def fired(content: Content, *rules: Rule, closed_world: bool = False) -> dict[str, int]:
    index = RuleIndex(rules)
    found = matches(content, index, 100, closed_world)
    return {match.rule.rule_id: match.revision for match in found}


def test_a_text_rule_fires_while_the_image_is_still_being_analysed() -> None:
    content = declared(IMAGE, post=text("text", "bitcoin"))
    assert content.pending() == ("img",)
    assert fired(content, Rule("btc", 1, condition="bitcoin")) == {"btc": 1}


def test_a_negated_term_waits_for_the_text_still_to_come() -> None:
    """The image may carry text (OCR): `NOT scam` is unknown until the image is closed."""
    content = declared(IMAGE, post=text("text", "bitcoin"))
    rule = Rule("clean", 1, condition="bitcoin AND NOT scam")
    assert truth(rule.condition, content) is None and fired(content, rule) == {}
    content.add(image())
    content.add(PartClosed("x:1", "img", ("img.text",)))
    assert truth(rule.condition, content) is None  # the OCR text is announced, not in yet
    content.add(text("img.text", "scam"))
    assert truth(rule.condition, content) is False and content.complete


def test_logo_seen_and_negative_sentiment() -> None:
    rule = Rule("logo-hate", 1, condition='image_match("acme-logo") AND sentiment < -0.3')
    content = declared(IMAGE, post=text(compound=-0.7))
    assert truth(rule.condition, content) is None
    content.add(image(status="partial"))
    assert truth(rule.condition, content) is None
    content.add(image(refs=("acme-logo",)))
    assert truth(rule.condition, content) is True
    (match,) = matches(content, RuleIndex([rule]), 50)
    assert match.evidence.images == ("acme-logo",) and match.evidence.sentiment == -0.7


def test_image_match_is_false_once_every_image_is_closed() -> None:
    content = declared(IMAGE)
    content.add(image(refs=("other",)))
    assert truth('image_match("acme-logo")', content) is None
    content.add(PartClosed("x:1", "img"))
    assert truth('image_match("acme-logo")', content) is False
    assert truth('image_match("Other")', content) is True  # by name too


@pytest.mark.parametrize(("condition", "expected"), [
    ('object("person") >= 2', True),
    ('object("person") >= 3', False),
    ('object("person") < 3', True),
    ('object("dog")', False),
    ("faces >= 1", True),
    ("faces = 1", True),
    ('scene("seashore") > 0.5', True),
    ('scene("coast")', True),
    ('scene("volcano")', False),
])
def test_visual_measures_when_the_image_is_closed(condition: str, expected: bool) -> None:
    content = declared(IMAGE)
    content.add(image(objects=("person", "person", "car"), faces=1, labels=(("seashore, coast", 0.7),)))
    content.add(PartClosed("x:1", "img"))
    assert truth(condition, content) is expected


@pytest.mark.parametrize(("condition", "expected"), [
    ('object("person") >= 2', True),  # a maximum can only grow: decided now
    ('object("person") < 2', False),
    ('object("person") < 5', None),  # another image could still show more
    ('object("person") = 2', None),
])
def test_visual_measures_while_parts_are_pending(condition: str, expected: bool | None) -> None:
    content = declared(IMAGE, MediaPart("img2", "image", "https://example.com/b.jpg"))
    content.add(image(objects=("person", "person")))
    content.add(PartClosed("x:1", "img"))
    assert truth(condition, content) is expected


def test_video_objects_count_the_most_in_one_frame() -> None:
    content = Content("x:1")
    content.add(text(), event(VIDEO), ingested_at=1, audio_of_video=False)
    video = MediaFindings("x:1", "vid", "video", VIDEO.uri, "partial",
                          video=VideoSummary(3, 2000, (VideoObject("person", 0, 2000, 0.9, 1000, 3, 4),), 2))
    content.add(video)
    assert truth('object("person") >= 4', content) is True
    assert truth("faces >= 2", content) is True
    assert content.pending() == ("vid",)


def test_audio_clip_said_and_speech_share() -> None:
    content = declared(AUDIO)
    content.add(text("pod.text", "ask not"))
    content.add(audio(status="partial", speech_share=0.9))
    assert truth('said("ask not")', content) is True
    assert truth("speech_share > 0.5", content) is None  # a partial share can still fall
    content.add(audio(clips=("jingle",), speech_share=0.8))
    content.add(PartClosed("x:1", "pod", ("pod.text",)))
    assert truth("speech_share > 0.5", content) is True
    assert truth('audio_match("jingle")', content) is True
    assert truth('said("fellow citizens")', content) is False
    assert truth('"ask not"', content) is True  # a phrase matches what was said too


def test_said_needs_speech_not_the_post_text() -> None:
    content = declared(AUDIO, post=text("text", "ask not"))
    content.add(audio())
    content.add(PartClosed("x:1", "pod"))
    assert truth('said("ask not")', content) is False


def test_sentiment_of_an_item_without_text_comes_from_its_media_text() -> None:
    content = declared(IMAGE, post=text(flags=("empty",)))
    assert truth("sentiment < 0", content) is None
    content.add(image())
    content.add(PartClosed("x:1", "img", ("img.text",)))
    content.add(text("img.text", compound=-0.5))
    assert truth("sentiment < 0", content) is True


def test_time_of_day_and_hour_read_the_publication_time() -> None:
    content = declared()  # 12:30 UTC
    assert truth("hour >= 12 AND hour < 13", content) is True
    assert truth("time:12:00-13:00", content) is True
    assert truth("time:22:00-06:00", content) is False
    assert truth("time:13:00-14:00@Europe/Berlin", content) is True  # 13:30 in Berlin


def test_at_the_deadline_unknowns_resolve_with_the_missing_parts_flagged() -> None:
    rule = Rule("calm-btc", 1, condition='bitcoin AND NOT image_match("scam-banner")')
    content = declared(IMAGE, post=text("text", "bitcoin"))
    assert fired(content, rule) == {}
    content.timed_out = True
    (match,) = matches(content, RuleIndex([rule]), 100)
    assert match.missing == ("img",)
    fused = content.fused(200, with_fired(content))
    assert (fused.complete, fused.timed_out, fused.missing) == (False, True, ("img",))
    assert [(part.part_id, part.status) for part in fused.parts] == [("text", "ok"), ("img", "missing")]


def test_new_evidence_is_a_new_revision_and_the_same_evidence_is_not() -> None:
    rule = Rule("crowd", 1, condition='object("person") >= 1')
    content = declared(IMAGE)
    content.add(image(status="partial", objects=("person",), analysed_at=10))
    assert fired(content, rule) == {"crowd": 1}
    assert fired(content, rule) == {}
    content.add(image(objects=("person", "person"), analysed_at=20))
    assert fired(content, rule) == {"crowd": 2}


def test_partial_findings_never_replace_final_ones() -> None:
    content = declared(IMAGE)
    content.add(image(objects=("person",), analysed_at=20))
    content.add(image(status="partial", analysed_at=30))
    assert content.media["img"].status == "ok"


def test_findings_before_the_declaration_wait_for_it() -> None:
    content = Content("x:1")
    content.add(image(refs=("acme-logo",)))
    assert not content.declared and content.pending() == ("text",)
    assert matches(content, RuleIndex([Rule("r", 1, condition='image_match("acme-logo")')]), 1) == []
    content.add(text(), event(IMAGE), ingested_at=1)
    content.add(PartClosed("x:1", "img"))
    assert fired(content, Rule("r", 1, condition='image_match("acme-logo")')) == {"r": 1}


RULES = [
    Rule("term", 1, condition="bitcoin"),
    Rule("not-term", 1, condition="bitcoin AND NOT scam"),
    Rule("logo", 1, condition='image_match("acme-logo") AND sentiment < -0.3'),
    Rule("crowd", 1, condition='object("person") >= 2 OR faces >= 3'),
    Rule("few", 1, condition='object("person") < 2'),
    Rule("heard", 1, condition='said("ask not") OR audio_match("jingle")'),
    Rule("speech", 1, condition="speech_share > 0.5 AND NOT scam"),
]


def _records():
    return [
        image(status="partial", objects=("person",), analysed_at=10),
        image(objects=("person", "person"), refs=("acme-logo",), analysed_at=20),
        PartClosed("x:1", "img", ("img.text",)),
        text("img.text", "bitcoin"),
        audio(status="partial", speech_share=0.2, analysed_at=10),
        audio(clips=("jingle",), speech_share=0.7, analysed_at=30),
        text("pod.text", "ask not"),
        PartClosed("x:1", "pod", ("pod.text",)),
    ]


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(9)))
def test_outcomes_do_not_depend_on_the_arrival_order(order: list[int]) -> None:
    """Whatever order the declaration and the parts arrive in, the same rules fire, and the last
    evidence of each is the same."""
    index = RuleIndex(RULES)
    records = _records()
    content = Content("x:1")
    last: dict[str, object] = {}
    for i in order:
        if i == 8:
            content.add(text("text", compound=-0.6), event(IMAGE, AUDIO), ingested_at=1, audio_of_video=False)
        else:
            content.add(records[i])
        if content.declared:
            for match in matches(content, index, 1):
                last[match.rule.rule_id] = match.evidence
    assert content.complete
    assert sorted(last) == ["crowd", "heard", "logo", "not-term", "speech", "term"]
    reference = Content("x:1")
    reference.add(text("text", compound=-0.6), event(IMAGE, AUDIO), ingested_at=1, audio_of_video=False)
    for record in records:
        reference.add(record)
    final = {m.rule.rule_id: m.evidence for m in matches(reference, index, 1)}
    assert last == final


def test_the_index_finds_media_rules_by_what_was_seen() -> None:
    index = RuleIndex([Rule("logo", 1, condition='image_match("acme-logo")'),
                       Rule("crowd", 1, condition='object("person") >= 2'),
                       Rule("empty-room", 1, condition='object("person") < 1'),
                       Rule("voice", 1, condition='said("ask not")')])
    assert [r.rule.rule_id for r in index.candidates_for({"image:acme-logo"})] == ["logo", "empty-room"]
    assert [r.rule.rule_id for r in index.candidates_for({"object:person"})] == ["crowd", "empty-room"]
    assert [r.rule.rule_id for r in index.candidates_for({"said:ask not"})] == ["empty-room", "voice"]
    assert "ask not" in index.spoken


def test_fused_facts_labels_name_every_media_fact() -> None:
    content = declared(IMAGE, AUDIO)
    content.add(image(objects=("person",), faces=1, refs=("acme-logo",), labels=(("seashore, coast", 0.4),)))
    content.add(audio(clips=("jingle",), speech_share=0.3))
    labels = content.facts().labels()
    assert {"image:acme-logo", "object:person", "faces", "scene:coast", "clip:jingle", "speech"} <= labels


def test_facts_of_one_text_are_settled() -> None:
    facts = FusedFacts.of_text(text("text", "doge"), "x", "alice", "timeline")
    assert evaluate(parse("doge AND NOT moon"), facts) is True
    assert evaluate(parse('image_match("x")'), facts) is False


def test_an_undeclared_item_reports_only_what_arrived() -> None:
    content = Content("x:9")
    content.add(dataclasses.replace(image(), content_key="x:9"))
    fused = content.fused(5, ())
    assert fused.platform is None and fused.missing == ("text",) and len(fused.media) == 1
