"""One JSON codec for every record: fields are declared once, on the frozen dataclass.

`decode(cls, raw)` turns bytes, str or a dict into a validated record and raises RecordError
naming the field and the problem; `encode(record)` writes compact JSON. Supported field types:
str, int, float, bool, `X | None`, `tuple[X, ...]`, `dict[str, X]` and nested record classes.
A field may restrict its values with `choice(...)` metadata and is required unless it has a default.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from functools import cache
from typing import Any, TypeVar

from schemas.errors import RecordError

R = TypeVar("R")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MISSING = dataclasses.MISSING


def choices(*allowed: str) -> dict[str, Any]:
    """Field metadata that restricts a str field to `allowed` values."""
    return {"choices": frozenset(allowed)}


def encode(record: Any) -> str:
    """Compact JSON of a record (nested records and tuples included)."""
    return json.dumps(to_dict(record), ensure_ascii=False, separators=(",", ":"))


def to_dict(record: Any) -> dict[str, Any]:
    return _plain(record)


def _plain(value: Any) -> Any:
    """JSON-ready form of a record: like dataclasses.asdict without its deep copies (3x faster;
    encoding findings and alerts is on every event's path)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _field_names(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


@cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None


def decode(cls: type[R], raw: bytes | str | dict[str, Any]) -> R:
    """Parse and validate one record of type `cls`; RecordError says precisely what is wrong."""
    if isinstance(raw, bytes):
        raw = decode_utf8(raw)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RecordError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        except RecursionError as exc:
            raise RecordError("malformed JSON: nested too deeply") from exc
        except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
            raise RecordError(f"malformed JSON: {exc}") from exc
    return _build(cls, raw, path="")


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from exc


def _build(cls: type[R], data: Any, path: str) -> R:
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {_json_type(data)}", path or None)
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecordError(f"unknown field(s) {', '.join(unknown)}", path or None)
    values = {}
    for f in dataclasses.fields(cls):
        where = f"{path}.{f.name}" if path else f.name
        if f.name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                raise RecordError("missing required field", where)
            continue
        value = _convert(hints[f.name], data[f.name], where)
        allowed = f.metadata.get("choices")
        if allowed is not None and value is not None and value not in allowed:
            raise RecordError(f"{value!r} is not one of {sorted(allowed)}", where)
        values[f.name] = value
    try:
        return cls(**values)
    except RecordError as exc:
        if not path:
            raise
        raise RecordError(exc.reason, f"{path}.{exc.field}" if exc.field else path) from exc
    except (ValueError, TypeError) as exc:
        raise RecordError(str(exc), path or None) from exc


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is tuple:
        return _convert_tuple(typing.get_args(tp)[0], value, where)
    if origin is dict:
        return _convert_dict(typing.get_args(tp)[1], value, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    return _convert_scalar(tp, value, where)


def _convert_tuple(item_type: Any, value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise RecordError(f"expected a list, got {_json_type(value)}", where)
    return tuple(_convert(item_type, item, f"{where}[{i}]") for i, item in enumerate(value))


def _convert_dict(value_type: Any, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"expected an object, got {_json_type(value)}", where)
    return {k: _convert(value_type, v, f"{where}.{k}") for k, v in value.items()}


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    # bool is a subclass of int in Python but not in JSON: keep them apart.
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            value = float(value) if ok else value
        except OverflowError as exc:
            raise RecordError("number too large for a float", where) from exc
    elif tp is str:
        ok = isinstance(value, str)
        if ok and not value.isascii():
            # JSON can escape lone surrogates ("\ud800"), which no UTF-8 writer downstream accepts.
            value = _SURROGATE.sub("\ufffd", value)
    elif tp is Any:
        ok = True
    else:
        raise TypeError(f"unsupported field type {tp!r} at {where}")
    if not ok:
        raise RecordError(f"expected {tp.__name__}, got {_json_type(value)}", where)
    return value


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, (int, float)) else type(value).__name__)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
