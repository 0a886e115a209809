"""Alert shaping, per rule: what fusion matched becomes alerts, without floods.

Pure: the Flink adapter (ShapeAlerts in udfs/fuse_operators.py) is keyed by rule id and hands in
its map states as stores (get / put / remove, and items for the windows).

  * A rule without a window: each match joins a story (udfs/stories.py: the same text or picture
    reposted by many accounts). The story has one alert: its id comes from the rule and the
    story's first item, and every new item, or new evidence for an item already counted, is a new
    revision of it carrying the story id and count. `stories: false` gives one alert per item.
  * A rule with a window: matches are counted per group in event time (udfs/windows.py), and the
    window alerts carry the counts and the baseline that made them fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.alert import Alert, Evidence, StageTimes, WindowStats, alert_id_for
from schemas.codec import encode
from schemas.pipeline import RuleMatch
from schemas.rule import Rule
from schemas.window import WindowSpec
from udfs.stories import Store, StoryIndex, text_signature
from udfs.windows import Hit, WindowAlert, group_values, new_state

EXCERPT_CHARS = 280


@dataclass(frozen=True)
class Slot:
    """The last revision of one alert."""

    alert_id: str
    revision: int


@dataclass(frozen=True)
class GroupWindow:
    """One group's window state, with the rule version and spec it counts for."""

    spec: WindowSpec
    rule: Rule
    state: Any


class RuleAlerts:
    """The alerts of one rule. `index` is the rule's story index; `alerts` maps a story or window
    key to its Slot, and an item to the evidence last seen of it; `windows` maps a group to its
    GroupWindow (and must offer items())."""

    def __init__(self, index: StoryIndex, alerts: Store, windows: Any) -> None:
        self.index = index
        self.alerts = alerts
        self.windows = windows

    def on_match(self, match: RuleMatch, watermark_ms: int, now_ms: int) -> tuple[list[Alert], int]:
        """Alerts this match makes, and how many of its window hits came too late to count.
        A match repeating what this rule already saw of the item (a duplicate event, a replay
        after fusion forgot the item) makes none."""
        seen_key = f"c:{match.event.content_key}#{match.step}"
        evidence = encode((match.evidence, match.missing))
        seen = self.alerts.get(seen_key)
        if seen == evidence or (seen is not None and match.rule.window is not None):
            return [], 0  # a window counts each item once
        self.alerts.put(seen_key, evidence)
        if match.rule.window is not None:
            return self._count(match, watermark_ms, now_ms)
        return [self._story_alert(match, now_ms)], 0

    def on_watermark(self, watermark_ms: int, now_ms: int) -> list[Alert]:
        """Window alerts that event time reaching the watermark settles."""
        alerts = []
        for group, entry in list(self.windows.items()):
            fired = entry.state.advance(entry.spec, watermark_ms)
            self.windows.put(group, entry)
            alerts += [self._window_alert(found, entry.rule, None, now_ms) for found in fired]
        return [alert for alert in alerts if alert is not None]

    def next_timer(self) -> int | None:
        due = [entry.state.next_timer(entry.spec) for _, entry in self.windows.items()]
        due = [at for at in due if at is not None]
        return min(due) if due else None

    def on_rule(self, rule: Rule) -> bool:
        """A new version of the rule: window counts restart when its window changed or it is no
        longer active (counts made under another window mean nothing under the new one)."""
        stale = [group for group, entry in self.windows.items()
                 if not rule.active or rule.window != entry.spec]
        for group in stale:
            self.windows.remove(group)
        return bool(stale)

    # --- stories --------------------------------------------------------------------------

    def _story_alert(self, match: RuleMatch, now_ms: int) -> Alert:
        event, rule = match.event, match.rule
        if not rule.stories:
            key, story_id, count = event.content_key, None, 1
        else:
            phashes = tuple(int(value, 16) for value in match.phashes)
            story = self.index.assign(event.content_key, text_signature(event.text), phashes, now_ms)
            key, story_id, count = f"s:{story.story_id}", story.story_id, story.count
        slot = self.alerts.get(key)
        # The first item names the alert, so a story of one is the item's alert as before.
        slot = Slot(alert_id_for(rule.rule_id, event.content_key), 1) if slot is None else Slot(
            slot.alert_id, slot.revision + 1)
        self.alerts.put(key, slot)
        return _alert(match, slot, now_ms, story_id=story_id, story_count=count)

    # --- windows --------------------------------------------------------------------------

    def _count(self, match: RuleMatch, watermark_ms: int, now_ms: int) -> tuple[list[Alert], int]:
        rule, event, spec = match.rule, match.event, match.rule.window
        alerts, late = [], 0
        groups = group_values(spec.group_by, platform=event.platform, source=event.source,
                              author=event.author, entities=match.entities)
        for group in groups:
            entry = self.windows.get(group)
            if entry is None or entry.spec != spec:
                entry = GroupWindow(spec, rule, new_state(spec))
            elif entry.rule.version != rule.version:
                entry = GroupWindow(spec, rule, entry.state)
            hit = Hit(rule.rule_id, rule.version, event.content_key, event_time(match), group,
                      match.entities, match.step)
            added = entry.state.add(hit, spec, watermark_ms)
            late += added.late
            self.windows.put(group, entry)
            alerts += [self._window_alert(found, rule, match, now_ms) for found in added.alerts]
        return [alert for alert in alerts if alert is not None], late

    def _window_alert(self, found: WindowAlert, rule: Rule, match: RuleMatch | None, now_ms: int) -> Alert | None:
        key = f"w:{found.alert_key}"
        if self.alerts.get(key) is not None:  # each window pattern alerts once
            return None
        slot = Slot(alert_id_for(rule.rule_id, found.alert_key), 1)
        self.alerts.put(key, slot)
        stats = WindowStats(
            kind=found.kind, group=found.group, window_start=found.window_start_ms, window_end=found.window_end_ms,
            count=found.count, threshold=found.threshold, baseline_mean=found.baseline_mean,
            baseline_std=found.baseline_std, z=found.z, entity=found.entity, content_keys=found.content_keys,
        )
        first = found.trigger_key or (found.content_keys[0] if found.content_keys else "")
        if match is not None:
            return _alert(match, slot, now_ms, window=stats)
        return Alert(
            alert_id=slot.alert_id, revision=1, rule_id=rule.rule_id, rule_version=rule.version,
            severity=rule.severity, content_key=first, platform=first.partition(":")[0],
            source=found.group if rule.window and rule.window.group_by == "source" else "",
            author=found.group if rule.window and rule.window.group_by == "author" else "",
            url=None, excerpt=describe(stats), evidence=Evidence(),
            times=StageTimes(found.window_end_ms, now_ms, now_ms, now_ms), routes=rule.routes, window=stats,
        )


def event_time(match: RuleMatch) -> int:
    """When the item was published, but never after the collector saw it (a wrong clock on the
    platform must not push event time, and so every window, into the future)."""
    return min(match.event.published_at, match.event.collected_at)


def describe(stats: WindowStats) -> str:
    """One line a person reads in the feed."""
    group = f" for {stats.group}" if stats.group else ""
    if stats.kind == "threshold":
        return f"{stats.count} matches in the window{group} (threshold {stats.threshold})"
    if stats.kind == "spike":
        return (f"spike{group}: {stats.count} matches against a baseline of {stats.baseline_mean:.1f} "
                f"± {stats.baseline_std:.1f} (z = {stats.z:.1f})")
    if stats.kind == "novelty":
        return f"first mention of {stats.entity}{group}"
    return f"sequence{group}: step A then step B within the window"


def _alert(match: RuleMatch, slot: Slot, now_ms: int, story_id: str | None = None, story_count: int = 1,
           window: WindowStats | None = None) -> Alert:
    rule, event = match.rule, match.event
    return Alert(
        alert_id=slot.alert_id,
        revision=slot.revision,
        rule_id=rule.rule_id,
        rule_version=rule.version,
        severity=rule.severity,
        content_key=event.content_key,
        platform=event.platform,
        source=event.source,
        author=event.author,
        url=event.url,
        excerpt=event.text[:EXCERPT_CHARS] if window is None else describe(window),
        evidence=match.evidence,
        times=StageTimes(event.collected_at, match.ingested_at, match.analysed_at, now_ms),
        routes=rule.routes,
        story_id=story_id,
        story_count=story_count,
        missing=match.missing,
        window=window,
    )
