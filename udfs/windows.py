"""The pure core of windowed rule patterns: a rule's hits (per-content matches) in, window
alerts out. No Flink, no clock: a keyed operator feeds one group's state its hits and the
watermark, registers an event-time timer at `next_timer`, and calls `advance` when it fires.

Event time is the content's published_at (epoch ms); windows are half-open [start, end) and
aligned to the epoch. A hit is late when `event_ms < watermark - lateness`: it is not counted
and `add` says so (the operator counts it in a metric). Everything before `watermark - lateness`
(the settled time) is final, so a window is judged, or a buffered hit processed, only once it is
settled: that is what makes the alerts independent of the arrival order of hits that are not late.

    threshold  count per window (tumbling or sliding); fires once per window as soon as the count
               exceeds the threshold, on arrival.
    spike      tumbling windows judged when settled against an EWMA baseline of earlier windows.
    novelty    an entity a group (source, author) has not mentioned within `size`; processed in
               event-time order once settled.
    sequence   a step-B hit with a step-A hit of the same group at most `size` before it;
               processed in event-time order once settled.

State is one small picklable object per group (the operator keeps it in Flink map state) and stays
bounded: windows are dropped once settled, novelty forgets after `size`, sequence keeps the step-A
hits of the last `size` (at most MAX_STEP_A).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from schemas.window import WindowSpec

SAMPLE_KEYS = 10
MAX_KNOWN_ENTITIES = 10_000
MAX_STEP_A = 1000


@dataclass(frozen=True)
class Hit:
    """One content that matched a windowed rule, for one group (`group` is "" for by=rule)."""

    rule_id: str
    rule_version: int
    content_key: str
    event_ms: int
    group: str = ""
    entities: tuple[str, ...] = ()  # the names it mentions, read by novelty
    step: int = 0  # 1 for the step-B condition (`then`) of a sequence


@dataclass(frozen=True)
class WindowAlert:
    """A window pattern that fired. Novelty: `entity` was not mentioned in [start, end), the
    `size` before the trigger. Sequence: step A at window_start_ms, step B at window_end_ms and
    `count` the step-A hits within reach. `content_keys` holds up to SAMPLE_KEYS examples."""

    rule_id: str
    rule_version: int
    kind: str
    group: str
    window_start_ms: int
    window_end_ms: int
    count: int
    fired_at_watermark_ms: int
    content_keys: tuple[str, ...] = ()
    threshold: int | None = None
    baseline_mean: float | None = None
    baseline_std: float | None = None
    z: float | None = None
    entity: str | None = None
    trigger_key: str | None = None  # the hit that fired a novelty or sequence alert

    @property
    def alert_key(self) -> str:
        """Deterministic identity: the same pattern gives the same key whatever the arrival
        order, so the operator derives a stable alert id from it (the rule version is not part
        of it: an edit does not re-fire a window)."""
        parts = (self.rule_id, self.kind, self.group, str(self.window_start_ms),
                 self.entity or "", self.trigger_key or "")
        return "\x1f".join(parts)


@dataclass(frozen=True)
class Added:
    """What `add` did with a hit: alerts it fired at once (threshold only), or that it was late."""

    alerts: list[WindowAlert]
    late: bool = False


def group_values(by: str, *, platform: str, source: str, author: str,
                 entities: tuple[str, ...]) -> tuple[str, ...]:
    """The groups a matching content counts in: exactly one, except by=entity where it counts
    once per distinct entity it mentions (and nowhere when it mentions none)."""
    if by == "entity":
        return tuple(sorted(set(entities)))
    return ({"rule": "", "platform": platform, "source": source, "author": author}[by],)


def window_starts(event_ms: int, size_ms: int, slide_ms: int) -> range:
    """Starts of the windows [start, start + size) holding `event_ms`, every `slide` from 0."""
    last = event_ms - event_ms % slide_ms
    return range(last - size_ms + slide_ms, last + 1, slide_ms)


@dataclass
class _Group:
    """What every kind's state shares: the late check and the identity its alerts carry."""

    rule_id: str = ""
    rule_version: int = 0
    group: str = ""

    def add(self, hit: Hit, spec: WindowSpec, watermark_ms: int) -> Added:
        if hit.event_ms < watermark_ms - spec.lateness_ms:
            return Added([], late=True)
        self.rule_id, self.rule_version, self.group = hit.rule_id, hit.rule_version, hit.group
        return Added(self._take(hit, spec, watermark_ms))

    def _take(self, hit: Hit, spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        raise NotImplementedError

    def _alert(self, spec: WindowSpec, watermark_ms: int, **fields: Any) -> WindowAlert:
        return WindowAlert(self.rule_id, self.rule_version, spec.kind, self.group,
                           fired_at_watermark_ms=watermark_ms, **fields)


@dataclass
class _Window:
    count: int = 0
    keys: list[str] = field(default_factory=list)
    fired: bool = False

    def add(self, content_key: str) -> None:
        self.count += 1
        if len(self.keys) < SAMPLE_KEYS:
            self.keys.append(content_key)


@dataclass
class ThresholdState(_Group):
    windows: dict[int, _Window] = field(default_factory=dict)  # by start

    def _take(self, hit: Hit, spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        alerts = []
        assert spec.threshold is not None  # WindowSpec requires it for this kind
        for start in window_starts(hit.event_ms, spec.size_ms, spec.slide_ms):
            window = self.windows.setdefault(start, _Window())
            window.add(hit.content_key)
            if window.count > spec.threshold and not window.fired:
                window.fired = True
                alerts.append(self._alert(
                    spec, watermark_ms, window_start_ms=start, window_end_ms=start + spec.size_ms,
                    count=window.count, content_keys=tuple(window.keys), threshold=spec.threshold))
        return alerts

    def advance(self, spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        """Drop settled windows: no hit can reach them any more (it would be late)."""
        settled = watermark_ms - spec.lateness_ms
        for start in [s for s in self.windows if s + spec.size_ms <= settled]:
            del self.windows[start]
        return []

    def next_timer(self, spec: WindowSpec) -> int | None:
        return min(self.windows) + spec.size_ms + spec.lateness_ms if self.windows else None


@dataclass
class Baseline:
    """Exponentially weighted mean of per-window counts and of the squared error of that mean
    as a prediction of the next window: the spread a new count is judged against (unlike the
    windows' own variance, it includes the uncertainty of the mean)."""

    mean: float = 0.0
    sq_error: float = 0.0
    windows: int = 0

    def fold(self, count: float, alpha: float) -> None:
        if self.windows == 0:  # start from the first window, not from a biased zero
            self.mean = float(count)
        else:
            error = count - self.mean
            self.mean += alpha * error
            self.sq_error += alpha * (error * error - self.sq_error)
        self.windows += 1

    def fold_zeros(self, n: int, alpha: float) -> None:
        """`n` empty windows at once. With r = 1 - alpha, folding k zeros gives mean r^k m and
        squared error r^k e + m^2 r^(k-1) (1 - r^k): a quiet week costs one step, not 10,080."""
        if n <= 0 or self.windows == 0:
            return
        r = 1 - alpha
        decay = r**n
        self.sq_error = decay * self.sq_error + self.mean * self.mean * r ** (n - 1) * (1 - decay)
        self.mean *= decay
        self.windows += n


@dataclass
class SpikeState(_Group):
    open: dict[int, _Window] = field(default_factory=dict)  # by start
    baseline: Baseline = field(default_factory=Baseline)
    last_judged: int | None = None  # start of the last window folded into the baseline

    def _take(self, hit: Hit, spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        start = hit.event_ms - hit.event_ms % spec.size_ms
        self.open.setdefault(start, _Window()).add(hit.content_key)
        return []

    def advance(self, spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        """Judge the settled windows in time order; the empty windows between them count as 0."""
        settled = watermark_ms - spec.lateness_ms
        alerts = []
        for start in sorted(s for s in self.open if s + spec.size_ms <= settled):
            if self.last_judged is not None:
                self.baseline.fold_zeros((start - self.last_judged) // spec.size_ms - 1, spec.alpha)
            alert = self._judge(start, self.open.pop(start), spec, watermark_ms)
            alerts.extend([alert] if alert else [])
            self.last_judged = start
        return alerts

    def _judge(self, start: int, window: _Window, spec: WindowSpec,
               watermark_ms: int) -> WindowAlert | None:
        """z of the count against the baseline. Its scale is the baseline's prediction error,
        floored at what Poisson counts would give (mean * 2 / (2 - alpha): the count's variance
        plus the EWMA mean's) and at 1, because a few windows often underestimate it. Once warm,
        a window enters the baseline clipped to mean + sigma * scale, so one spike does not raise
        the bar for the next."""
        base = self.baseline
        std = math.sqrt(base.sq_error)
        scale = math.sqrt(max(base.sq_error, base.mean * 2 / (2 - spec.alpha), 1.0))
        z = (window.count - base.mean) / scale
        warm = base.windows >= max(spec.warmup, 1)  # the first window has nothing to beat
        fired = warm and z >= spec.sigma and window.count >= spec.min_count
        alert = self._alert(
            spec, watermark_ms, window_start_ms=start, window_end_ms=start + spec.size_ms,
            count=window.count, content_keys=tuple(window.keys), baseline_mean=base.mean,
            baseline_std=std, z=z) if fired else None
        base.fold(min(window.count, base.mean + spec.sigma * scale) if warm else window.count,
                  spec.alpha)
        return alert

    def next_timer(self, spec: WindowSpec) -> int | None:
        return min(self.open) + spec.size_ms + spec.lateness_ms if self.open else None


@dataclass
class _Buffered(_Group):
    """Kinds that process hits one by one in event-time order once settled."""

    pending: list[tuple[int, int, str, tuple[str, ...]]] = field(default_factory=list)  # heap

    def _take(self, hit: Hit, spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        # (event, step, key): ties in time are broken by step (A before B) and key, never by
        # arrival; duplicates of one content are identical entries.
        heapq.heappush(self.pending, (hit.event_ms, hit.step, hit.content_key, hit.entities))
        return []

    def advance(self, spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        settled = watermark_ms - spec.lateness_ms
        alerts = []
        while self.pending and self.pending[0][0] < settled:
            event_ms, step, key, entities = heapq.heappop(self.pending)
            alerts.extend(self._process(event_ms, step, key, entities, spec, watermark_ms))
        self._expire(settled, spec.size_ms)
        return alerts

    def next_timer(self, spec: WindowSpec) -> int | None:
        # settled passes event_ms once watermark - lateness > event_ms
        return self.pending[0][0] + spec.lateness_ms + 1 if self.pending else None

    def _process(self, event_ms: int, step: int, key: str, entities: tuple[str, ...],
                 spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        raise NotImplementedError

    def _expire(self, now_ms: int, size_ms: int) -> None:
        """Forget what no hit at `now_ms` or later can use."""
        raise NotImplementedError


@dataclass
class NoveltyState(_Buffered):
    # entity -> last mention; re-inserted on each mention, so oldest first (hits come in time order)
    known: dict[str, int] = field(default_factory=dict)
    hits: int = 0

    def _process(self, event_ms: int, step: int, key: str, entities: tuple[str, ...],
                 spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        self._expire(event_ms, spec.size_ms)
        names = sorted(set(entities))
        new = [name for name in names if name not in self.known] if self.hits >= spec.warmup else []
        for name in names:
            self.known.pop(name, None)
            self.known[name] = event_ms
        while len(self.known) > MAX_KNOWN_ENTITIES:  # the least recently mentioned goes first
            del self.known[next(iter(self.known))]
        self.hits += 1
        return [self._alert(spec, watermark_ms, window_start_ms=event_ms - spec.size_ms,
                            window_end_ms=event_ms, count=1, content_keys=(key,), entity=name,
                            trigger_key=key) for name in new]

    def _expire(self, now_ms: int, size_ms: int) -> None:
        """Known means mentioned within `size`: after now - size."""
        while self.known and self.known[oldest := next(iter(self.known))] <= now_ms - size_ms:
            del self.known[oldest]


@dataclass
class SequenceState(_Buffered):
    steps_a: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=MAX_STEP_A))

    def _process(self, event_ms: int, step: int, key: str, entities: tuple[str, ...],
                 spec: WindowSpec, watermark_ms: int) -> list[WindowAlert]:
        self._expire(event_ms, spec.size_ms)
        if step == 0:
            self.steps_a.append((event_ms, key))
            return []
        # A content matching both steps is not a sequence with itself.
        reach = [(a_ms, a_key) for a_ms, a_key in self.steps_a if a_key != key]
        if not reach:
            return []
        a_ms, a_key = reach[-1]  # the latest: the tightest A -> B
        return [self._alert(spec, watermark_ms, window_start_ms=a_ms, window_end_ms=event_ms,
                            count=len(reach), content_keys=(a_key, key), trigger_key=key)]

    def _expire(self, now_ms: int, size_ms: int) -> None:
        """A step B reaches back `size` inclusive: gaps 0 <= tB - tA <= size."""
        while self.steps_a and self.steps_a[0][0] < now_ms - size_ms:
            self.steps_a.popleft()


WindowState = ThresholdState | SpikeState | NoveltyState | SequenceState
_STATES: dict[str, type[WindowState]] = {
    "threshold": ThresholdState, "spike": SpikeState,
    "novelty": NoveltyState, "sequence": SequenceState,
}


def new_state(spec: WindowSpec) -> WindowState:
    """The empty state of one group for `spec`'s kind."""
    return _STATES[spec.kind]()
