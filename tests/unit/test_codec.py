"""Unit tests of the JSON codec and the records it serves: round trips, precise rejections,
dead letters and alert ids."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alert import Alert, Evidence, StageTimes, alert_id_for
from schemas.codec import decode, encode
from schemas.content import PART_KINDS, PLATFORMS, ContentEvent, MediaPart, decode_event
from schemas.deadletter import PAYLOAD_PREFIX_BYTES, DeadLetter, dead_letter
from schemas.errors import RecordError
from schemas.findings import Sentiment, TermHit, TextFindings


def event_dict(**changes: Any) -> dict[str, Any]:
    """A valid ContentEvent as the JSON object a collector sends, with `changes` applied."""
    base: dict[str, Any] = {
        "content_key": "x:1", "platform": "x", "source": "timeline", "author": "alice",
        "published_at": 1_700_000_000_000, "collected_at": 1_700_000_000_500, "text": "hello",
    }
    return {**base, **changes}


def part_dict(**changes: Any) -> dict[str, Any]:
    return {"part_id": "p1", "kind": "image", "uri": "https://cdn.example/p1.jpg", **changes}


def rejection(raw: Any, cls: type = ContentEvent) -> RecordError:
    with pytest.raises(RecordError) as info:
        decode(cls, raw)
    return info.value


# --- strategies -------------------------------------------------------------------------------

epoch_ms = st.integers(min_value=0, max_value=2**53)
optional_text = st.none() | st.text(max_size=20)
media_parts = st.builds(
    MediaPart,
    part_id=st.text(min_size=1, max_size=12),
    kind=st.sampled_from(PART_KINDS),
    uri=st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["https://", "http://", "HTTPS://", "file://", "data:"]),
        st.text(max_size=30),
    ),
    mime=optional_text,
    size=st.none() | st.integers(min_value=0, max_value=2**62),
)


@st.composite
def content_events(draw: st.DrawFn) -> ContentEvent:
    platform = draw(st.sampled_from(PLATFORMS))
    return ContentEvent(
        content_key=f"{platform}:{draw(st.text(min_size=1, max_size=20))}",
        platform=platform,
        source=draw(st.text(max_size=20)),
        author=draw(st.text(max_size=20)),
        published_at=draw(epoch_ms),
        collected_at=draw(epoch_ms),
        text=draw(st.text(max_size=200)),
        url=draw(optional_text),
        lang=draw(optional_text),
        parts=tuple(draw(st.lists(media_parts, max_size=4, unique_by=lambda p: p.part_id))),
        metadata=draw(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)),
    )


finite = st.floats(allow_nan=False, allow_infinity=False)
term_hits = st.builds(TermHit, st.text(max_size=10), st.integers(0, 10**6), st.integers(0, 10**6))
sentiments = st.builds(Sentiment, finite, finite, finite, finite)


# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(content_events())
def test_content_event_round_trips(event: ContentEvent) -> None:
    """decode(encode(x)) == x from the JSON text and its UTF-8 bytes (parts, metadata, unicode)."""
    text = encode(event)
    assert decode_event(text) == event
    assert decode_event(text.encode("utf-8")) == event


@settings(max_examples=50, deadline=None)
@given(content_events())
def test_encode_is_compact_json_keeping_non_ascii(event: ContentEvent) -> None:
    """encode writes standard JSON without spaces after separators and without \\u escapes."""
    text = encode(event)
    assert json.loads(text) == json.loads(json.dumps(dataclasses.asdict(event)))
    assert json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")) == text


@settings(max_examples=100, deadline=None)
@given(
    sentiment=sentiments,
    hits=st.lists(term_hits, max_size=5),
    models=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    truncated=st.booleans(),
)
def test_text_findings_round_trip(
    sentiment: Sentiment, hits: list[TermHit], models: dict[str, str], truncated: bool
) -> None:
    """TextFindings with nested Sentiment, TermHit tuple, models dict and floats round-trip."""
    findings = TextFindings("x:1", sentiment, hits=tuple(hits), text_chars=12, truncated=truncated,
                            models=models, collected_at=5, analysed_at=6)
    assert decode(TextFindings, encode(findings)) == findings


def make_alert(**changes: Any) -> Alert:
    alert = Alert(
        alert_id=alert_id_for("doge-hype", "x:1"), revision=1, rule_id="doge-hype", rule_version=3,
        severity="high", content_key="x:1", platform="x", source="timeline", author="alice",
        url=None, excerpt="$DOGE to the moon",
        evidence=Evidence(hits=(TermHit("$doge", 0, 5),), sentiment=0.75),
        times=StageTimes(1, 2, 3, 4), routes=("feed", "email"),
    )
    return dataclasses.replace(alert, **changes)


def test_alert_round_trip() -> None:
    """An Alert with evidence, stage times and routes decodes back equal."""
    alert = make_alert()
    assert decode(Alert, encode(alert)) == alert


def test_alert_round_trip_without_sentiment_evidence() -> None:
    """Evidence.sentiment None survives the round trip as None (not 0.0)."""
    alert = make_alert(evidence=Evidence(), url="https://x.com/alice/1")
    assert decode(Alert, encode(alert)).evidence.sentiment is None


def test_dead_letter_round_trip() -> None:
    """A DeadLetter (base64 payload, content key) decodes back equal."""
    letter = dead_letter(b"\xff\x00", "decode", "bad", "content.events.v1", 9, content_key="x:1")
    assert decode(DeadLetter, encode(letter)) == letter


def test_decode_accepts_an_already_parsed_dict() -> None:
    """decode also takes a dict (e.g. a YAML item) and validates it the same way."""
    assert decode(ContentEvent, event_dict()) == decode_event(json.dumps(event_dict()))


def test_optional_fields_take_their_defaults() -> None:
    """Fields with defaults may be absent: text '', parts (), metadata {}, schema_version 1."""
    minimal = {k: v for k, v in event_dict().items() if k != "text"}
    event = decode(ContentEvent, minimal)
    assert (event.text, event.parts, event.metadata, event.url) == ("", (), {}, None)
    assert event.schema_version == 1


# --- rejections -------------------------------------------------------------------------------


def test_malformed_json_names_line_and_column() -> None:
    """Malformed JSON is a RecordError whose message gives the 1-based line and column."""
    error = rejection('{"content_key": "x:1",\n  "platform": }')
    assert str(error) == "malformed JSON: Expecting value at line 2 column 15"


def test_invalid_utf8_names_byte_offset() -> None:
    """Bytes that are not UTF-8 are a RecordError giving the offset of the first bad byte."""
    error = rejection(b'{"text": "caf\xe9"}')
    assert str(error).startswith("invalid UTF-8 at byte 13:")


def test_non_object_json_is_rejected() -> None:
    """A JSON array (or any non-object) at the top level is rejected by its JSON type name."""
    assert rejection("[1, 2]").reason == "expected a JSON object, got array"


@pytest.mark.parametrize("name", ["content_key", "platform", "source", "author", "published_at"])
def test_missing_required_field_is_named(name: str) -> None:
    """A missing required field is reported with that field's name."""
    raw = event_dict()
    del raw[name]
    error = rejection(raw)
    assert (error.field, error.reason) == (name, "missing required field")


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("published_at", True, "expected int, got boolean"),
        ("published_at", 1.5, "expected int, got number"),
        ("published_at", "1700000000000", "expected int, got string"),
        ("text", None, "expected str, got null"),
        ("text", 5, "expected str, got number"),
        ("parts", {}, "expected a list, got object"),
        ("metadata", [], "expected an object, got array"),
    ],
)
def test_wrong_type_is_named(name: str, value: Any, reason: str) -> None:
    """A value of the wrong JSON type names the field and both types (bool is not an int)."""
    error = rejection(event_dict(**{name: value}))
    assert (error.field, error.reason) == (name, reason)


def test_metadata_value_of_wrong_type_names_its_key() -> None:
    """A non-string metadata value is reported at metadata.<key>."""
    error = rejection(event_dict(metadata={"lang_guess": 3}))
    assert (error.field, error.reason) == ("metadata.lang_guess", "expected str, got number")


def test_int_is_accepted_for_a_float_field() -> None:
    """A JSON integer decodes into a float field as a float."""
    sentiment = decode(Sentiment, {"compound": 1, "pos": 0, "neu": 1, "neg": 0})
    assert sentiment == Sentiment(1.0, 0.0, 1.0, 0.0) and isinstance(sentiment.compound, float)


def test_bool_is_rejected_for_a_float_field() -> None:
    """true is not a number, even for a float field."""
    error = rejection({"compound": True, "pos": 0, "neu": 1, "neg": 0}, Sentiment)
    assert (error.field, error.reason) == ("compound", "expected float, got boolean")


def test_unknown_field_is_rejected_by_name() -> None:
    """Fields the record does not declare are listed, sorted, in the reason."""
    error = rejection(event_dict(colour="red", brand="acme"))
    assert error.reason == "unknown field(s) brand, colour"


def test_unknown_field_in_a_part_names_the_part() -> None:
    """An unknown field inside parts[i] is reported at that part's path."""
    error = rejection(event_dict(parts=[part_dict(), part_dict(part_id="p2", width=3)]))
    assert (error.field, error.reason) == ("parts[1]", "unknown field(s) width")


def test_platform_outside_the_choices_is_rejected() -> None:
    """platform must be one of PLATFORMS; the reason lists the allowed values."""
    error = rejection(event_dict(platform="myspace", content_key="myspace:1"))
    assert error.field == "platform" and error.reason.startswith("'myspace' is not one of [")
    assert "'bluesky'" in error.reason


def test_part_kind_outside_the_choices_is_rejected() -> None:
    """A part kind other than image/video/audio is reported at parts[i].kind."""
    error = rejection(event_dict(parts=[part_dict(kind="gif")]))
    assert error.field == "parts[0].kind"
    assert error.reason == "'gif' is not one of ['audio', 'image', 'video']"


@pytest.mark.parametrize("key", ["reddit:1", "x", "x:", "1", "X:1"])
def test_content_key_must_be_platform_colon_native_id(key: str) -> None:
    """content_key must be '<platform>:<non-empty native id>' for the event's own platform."""
    error = rejection(event_dict(content_key=key))
    assert (error.field, error.reason) == ("content_key", "must look like 'x:<native id>'")


def test_content_key_native_id_may_contain_colons() -> None:
    """Only the first ':' separates the platform; native ids like 'at://did:plc' are kept whole."""
    event = decode(ContentEvent, event_dict(platform="bluesky", content_key="bluesky:at://did:plc:1"))
    assert event.content_key == "bluesky:at://did:plc:1"


@pytest.mark.parametrize("name", ["published_at", "collected_at"])
def test_negative_timestamps_are_rejected(name: str) -> None:
    """Epoch-millisecond timestamps below zero are rejected by name; zero is allowed."""
    error = rejection(event_dict(**{name: -1}))
    assert (error.field, error.reason) == (name, "must be epoch milliseconds >= 0")
    assert getattr(decode(ContentEvent, event_dict(**{name: 0})), name) == 0


def test_duplicate_part_ids_are_rejected() -> None:
    """Two parts with the same part_id are rejected at 'parts'."""
    error = rejection(event_dict(parts=[part_dict(), part_dict(kind="video")]))
    assert (error.field, error.reason) == ("parts", "part_id values must be unique")


def test_unsupported_schema_version_is_rejected() -> None:
    """A schema_version other than 1 is rejected rather than misread."""
    error = rejection(event_dict(schema_version=2))
    assert (error.field, error.reason) == ("schema_version", "unsupported version 2")


@pytest.mark.parametrize("uri", ["ftp://h/f.jpg", "javascript:alert(1)", "cdn.example/a.jpg", ""])
def test_bad_uri_scheme_is_rejected(uri: str) -> None:
    """A part URI must be http(s)://, file:// or data:; anything else is a RecordError."""
    error = rejection(event_dict(parts=[part_dict(uri=uri)]))
    assert error.reason == "must be an http(s)://, file:// or data: URI"


@pytest.mark.parametrize(
    "uri", ["http://a/b", "HTTPS://a/b", "file:///tmp/a.png", "data:image/png;base64,AA=="]
)
def test_good_uri_schemes_are_accepted(uri: str) -> None:
    """The allowed URI schemes are accepted, case-insensitively."""
    assert decode(ContentEvent, event_dict(parts=[part_dict(uri=uri)])).parts[0].uri == uri


def test_bad_uri_error_names_the_part_path() -> None:
    """A bad URI in the second part is reported at parts[1].uri, like every other nested error."""
    error = rejection(event_dict(parts=[part_dict(), part_dict(part_id="p2", uri="ftp://h/x")]))
    assert error.field == "parts[1].uri"


def test_deeply_nested_json_is_a_record_error() -> None:
    """A deeply nested payload is a RecordError (a dead letter), not a RecursionError."""
    rejection(b"[" * 100_000)


def test_huge_integer_literal_is_a_record_error() -> None:
    """An absurdly long integer is a RecordError (a dead letter), not a ValueError."""
    rejection(b'{"published_at": 1' + b"0" * 5000 + b"}")


def test_integer_too_large_for_a_float_field_is_a_record_error() -> None:
    """An integer beyond float range in a float field is a RecordError."""
    rejection('{"compound": 1' + "0" * 400 + ', "pos": 0, "neu": 1, "neg": 0}', Sentiment)


def test_record_errors_carry_field_and_reason_in_the_message() -> None:
    """str(RecordError) is '<field>: <reason>', which becomes the dead letter's reason."""
    assert str(rejection(event_dict(author=None))) == "author: expected str, got null"


# --- dead letters -----------------------------------------------------------------------------


def test_dead_letter_keeps_a_small_utf8_payload_whole() -> None:
    """A small UTF-8 original is kept verbatim as text with its size and SHA-256."""
    original = '{"text": "café ☕"}'.encode()
    letter = dead_letter(original, "decode", "why", "content.events.v1", 42, content_key="x:1")
    assert letter == DeadLetter(
        stage="decode", reason="why", source_topic="content.events.v1", payload=original.decode(),
        payload_encoding="utf-8", payload_bytes=len(original),
        payload_sha256=hashlib.sha256(original).hexdigest(), truncated=False, failed_at=42,
        content_key="x:1",
    )


def test_dead_letter_base64_encodes_non_utf8_payload() -> None:
    """A payload that is not UTF-8 is stored as base64 of the exact bytes."""
    original = b'{"text": "caf\xe9"}\x00\xff'
    letter = dead_letter(original, "decode", "why", "t", 1)
    assert letter.payload_encoding == "base64" and not letter.truncated
    assert base64.b64decode(letter.payload) == original
    assert letter.content_key is None


def test_dead_letter_of_large_payload_keeps_prefix_size_and_hash() -> None:
    """Over 64 KiB, only the first 64 KiB are kept; size and SHA-256 describe the whole original."""
    original = b"a" * PAYLOAD_PREFIX_BYTES + b"tail"
    letter = dead_letter(original, "decode", "why", "t", 1)
    assert PAYLOAD_PREFIX_BYTES == 64 * 1024
    assert letter.truncated and letter.payload == "a" * PAYLOAD_PREFIX_BYTES
    assert letter.payload_bytes == len(original)
    assert letter.payload_sha256 == hashlib.sha256(original).hexdigest()


def test_dead_letter_of_exactly_64_kib_is_not_truncated() -> None:
    """A payload of exactly the prefix size is kept whole and not flagged."""
    letter = dead_letter(b"b" * PAYLOAD_PREFIX_BYTES, "decode", "why", "t", 1)
    assert not letter.truncated and len(letter.payload) == PAYLOAD_PREFIX_BYTES


def test_dead_letter_of_large_non_utf8_payload_keeps_base64_prefix() -> None:
    """A large binary payload keeps base64 of its first 64 KiB only."""
    original = b"\xff" * (PAYLOAD_PREFIX_BYTES + 1)
    letter = dead_letter(original, "decode", "why", "t", 1)
    assert letter.truncated and letter.payload_encoding == "base64"
    assert base64.b64decode(letter.payload) == original[:PAYLOAD_PREFIX_BYTES]


# --- alert ids --------------------------------------------------------------------------------


def test_alert_id_is_deterministic_hex() -> None:
    """The same rule and content key always give the same 32-hex-digit id."""
    first = alert_id_for("doge-hype", "x:1")
    assert first == alert_id_for("doge-hype", "x:1")
    assert len(first) == 32 and int(first, 16) >= 0


def test_alert_id_differs_per_rule_and_per_content() -> None:
    """Changing the rule or the content key changes the id; the separator prevents collisions."""
    ids = {
        alert_id_for("r1", "x:1"), alert_id_for("r2", "x:1"), alert_id_for("r1", "x:2"),
        alert_id_for("a", "b:c"), alert_id_for("a:b", "c"),
    }
    assert len(ids) == 5
