"""The exception tree of Trackius.

    TrackiusError              root: catch this to catch everything of ours
    ├── RecordError            a record failed to decode or validate (becomes a dead letter)
    │   └── RuleError          a rule is invalid (names the rule and, for syntax, the position)
    ├── ConfigError            a setting or a configuration file is unusable
    ├── ModelError             a model is missing or failed to run
    ├── MediaError             a media part could not be fetched or decoded (becomes a finding)
    └── DeliveryError          an alert could not be delivered to a receiver

A RecordError is about data and never stops a job: the record goes to the dead-letter topic.
Everything else is infrastructure and propagates to Flink's restart strategy.
"""

from __future__ import annotations


class TrackiusError(Exception):
    """Root of every error Trackius raises on purpose."""


class RecordError(TrackiusError):
    """A record is malformed; `reason` is precise enough to fix the producer."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class RuleError(RecordError):
    """A rule is invalid; the message names the rule and, for a syntax error, the position."""

    def __init__(self, rule_id: str | None, reason: str, position: int | None = None,
                 field: str | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"rule {rule_id or '?'}: {reason}{where}")
        self.rule_id = rule_id
        self.detail = reason
        self.position = position
        self.field = field  # the rule field at fault ("condition", "window.then"), when known


class ConfigError(TrackiusError):
    """A setting or configuration file cannot be used."""


class ModelError(TrackiusError):
    """A model is missing or failed to run."""


class MediaError(TrackiusError):
    """A media part could not be fetched or decoded. `code` is a short stable name for machines
    ("timeout", "too_large", "http_status", "not_media", "corrupt", "bomb", ...); the message
    says what happened in words. It becomes the part's finding, never a crash or a dead letter:
    the rest of the content is still analysed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


class DeliveryError(TrackiusError):
    """An alert could not be delivered to a receiver."""
