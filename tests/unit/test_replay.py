"""Unit tests of the replay tool's pure parts: restamping lines and pacing them."""

from __future__ import annotations

import json

import pytest

from trackius.replay import paced, restamped


def test_restamped_sets_collected_at_and_keys_by_content_key() -> None:
    """A JSON object gets collected_at = now (other fields kept) and its content_key as key."""
    record = {"content_key": "x:1", "collected_at": 5, "text": "café"}
    value, key = restamped(json.dumps(record, ensure_ascii=False).encode(), 1_700_000_000_123)
    assert json.loads(value) == {**record, "collected_at": 1_700_000_000_123}
    assert key == b"x:1"


def test_restamped_adds_collected_at_when_missing() -> None:
    """An object without collected_at gets one."""
    value, _ = restamped(b'{"content_key": "reddit:abc"}', 9)
    assert json.loads(value)["collected_at"] == 9


@pytest.mark.parametrize("line", [b'{"collected_at": 1}', b'{"content_key": 42}'])
def test_restamped_object_without_string_key_is_unkeyed(line: bytes) -> None:
    """An object whose content_key is absent or not a string is restamped but sent without key."""
    value, key = restamped(line, 9)
    assert json.loads(value)["collected_at"] == 9 and key is None


@pytest.mark.parametrize("line", [b"not json", b'{"content_key": "x:1",', b"\xff\xfe{}", b""])
def test_restamped_passes_non_json_unchanged(line: bytes) -> None:
    """A line that is not JSON (or not UTF-8) is sent as is, unkeyed, to be dead-lettered."""
    assert restamped(line, 9) == (line, None)


@pytest.mark.parametrize("line", [b"[1, 2]", b'"x:1"', b"42", b"null", b"true"])
def test_restamped_passes_non_objects_unchanged(line: bytes) -> None:
    """Valid JSON that is not an object is sent unchanged and unkeyed."""
    assert restamped(line, 9) == (line, None)


def test_paced_yields_everything_in_order() -> None:
    """paced yields every line once, in input order."""
    lines = [f"line {i}".encode() for i in range(200)]
    assert list(paced(lines, rate=1e9)) == lines


def test_paced_is_lazy() -> None:
    """paced pulls lines as it yields them, so a file or generator is not read ahead."""
    pulled: list[int] = []

    def source():
        for i in range(3):
            pulled.append(i)
            yield b"%d" % i

    stream = paced(source(), rate=1e9)
    assert next(stream) == b"0" and pulled == [0]


def test_paced_of_nothing_is_nothing() -> None:
    """An empty input yields nothing."""
    assert list(paced([], rate=1e9)) == []
