"""WindowSpec: the `window:` mapping of a rule, which turns its per-content matches into window
alerts (udfs/windows.py decides them). A rule file writes it as:

    window: {kind: threshold, size: 10m, slide: 1m, by: source, threshold: 50}
    window: {kind: spike, size: 1h, by: entity, sigma: 3}
    window: {kind: novelty, size: 7d, by: author}
    window: {kind: sequence, size: 30m, then: '$exit_scam'}

Durations are strings of a whole number and one unit (s, m, h, d): one representation, readable
in YAML, parsed once here into seconds so nothing downstream parses units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from schemas.codec import choices
from schemas.errors import RecordError

KINDS = ("threshold", "spike", "novelty", "sequence")
GROUPINGS = ("rule", "source", "author", "platform", "entity")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

MIN_SIZE_S = 1
MAX_SIZE_S = 366 * 86400
# State lives until a window's end plus the lateness: a day bounds how long a group's windows stay.
MAX_LATENESS_S = 86400
# A hit is counted in size/slide sliding windows: this bounds the work and state per hit.
MAX_WINDOWS_PER_HIT = 100
_DURATION = re.compile(r"([0-9]+)([A-Za-z]*)")


def parse_duration(text: str, name: str) -> int:
    """Seconds of a duration like "30s", "5m", "1h" or "7d"; RecordError naming field `name`."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise RecordError(f"expected a duration like 30s, 5m, 1h or 7d, got {text!r}", name)
    number, unit = match.groups()
    if unit not in UNITS:
        raise RecordError(f"unknown unit {unit!r} in {text!r} (use s, m, h or d)", name)
    return int(number) * UNITS[unit]


def format_duration(seconds: int) -> str:
    """The shortest exact spelling of `seconds` ("366d", "90s"), for error messages."""
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class WindowSpec:
    """How a rule's hits become window alerts; see udfs/windows.py for the semantics of each kind.

    `size` is the window (threshold, spike), how long an entity stays known to a group (novelty)
    or the longest gap from step A to step B (sequence). `by` defaults to "source" for novelty
    and sequence (the one that sees or says something) and to "rule" (one group) otherwise.
    `warmup` is, for spike, the windows of baseline before a spike may fire and, for novelty, the
    hits a group must have had before its entities count as new (else a new source floods).
    """

    kind: str = field(metadata=choices(*KINDS))
    size: str
    slide: str | None = None
    by: str | None = field(default=None, metadata=choices(*GROUPINGS))
    threshold: int | None = None
    sigma: float = 3.0
    min_count: int = 5
    alpha: float = 0.3
    warmup: int = 5
    then: str | None = None
    lateness: str = "0s"

    def __post_init__(self) -> None:
        _check_range("size", parse_duration(self.size, "size"), MIN_SIZE_S, MAX_SIZE_S)
        _check_range("lateness", parse_duration(self.lateness, "lateness"), 0, MAX_LATENESS_S)
        self._check_kind_fields()
        if self.slide is not None:
            self._check_slide(parse_duration(self.slide, "slide"))
        if self.sigma <= 0:
            raise RecordError("sigma must be > 0", "sigma")
        if self.min_count < 1:
            raise RecordError("min_count must be >= 1", "min_count")
        if not 0 < self.alpha <= 1:
            raise RecordError("alpha must be in (0, 1]", "alpha")
        if self.warmup < 0:
            raise RecordError("warmup must be >= 0", "warmup")

    def _check_kind_fields(self) -> None:
        owners = {"threshold": "threshold", "slide": "threshold", "then": "sequence"}
        for name, owner in owners.items():
            if getattr(self, name) is not None and self.kind != owner:
                raise RecordError(f"only a {owner} window takes {name}", name)
        if self.kind == "threshold" and self.threshold is None:
            raise RecordError("a threshold window needs a threshold", "threshold")
        if self.threshold is not None and self.threshold < 1:
            raise RecordError("threshold must be >= 1", "threshold")
        if self.kind == "sequence" and not (self.then or "").strip():
            raise RecordError("a sequence window needs `then`, the condition of its step B", "then")
        if self.kind == "novelty" and self.group_by not in ("source", "author"):
            raise RecordError("a novelty window groups by source or author", "by")

    def _check_slide(self, slide_s: int) -> None:
        size_s = self.size_ms // 1000
        if not MIN_SIZE_S <= slide_s <= size_s:
            raise RecordError(f"slide must be between 1s and the size ({self.size})", "slide")
        if size_s % slide_s:
            raise RecordError(f"slide {self.slide} does not divide size {self.size}", "slide")
        if size_s // slide_s > MAX_WINDOWS_PER_HIT:
            raise RecordError(f"slide must be at least size/{MAX_WINDOWS_PER_HIT} "
                              f"(a hit would count in {size_s // slide_s} windows)", "slide")

    # Cached: the window core reads these on every hit (cached_property writes the instance
    # dict directly, so it works on a frozen dataclass and never takes part in equality).
    @cached_property
    def size_ms(self) -> int:
        return parse_duration(self.size, "size") * 1000

    @cached_property
    def slide_ms(self) -> int:
        """The step between window starts: the size itself for tumbling windows."""
        return self.size_ms if self.slide is None else parse_duration(self.slide, "slide") * 1000

    @cached_property
    def lateness_ms(self) -> int:
        return parse_duration(self.lateness, "lateness") * 1000

    @property
    def group_by(self) -> str:
        if self.by is not None:
            return self.by
        return "source" if self.kind in ("novelty", "sequence") else "rule"


def _check_range(name: str, seconds: int, low: int, high: int) -> None:
    if seconds < low:
        raise RecordError(f"{name} must be at least {format_duration(low)}", name)
    if seconds > high:
        raise RecordError(f"{name} must be at most {format_duration(high)}", name)
