"""`trackius rules test --rules FILE --events FILE`: which rules fire on which content, offline.

Runs the job's own cores on ContentEvents read from a JSON-lines file: the text analysis
(udfs/text.py) in micro-batches, the media pipeline (udfs/media_pipeline.py) for image, video and
audio parts, the text read or heard in media through the text analysis again, then fusion and
the three-valued rule evaluation (udfs/fusion.py) with every part in. Prints one JSON line per
event, in input order: {"content_key": ..., "fired": [rule ids]}. Windowed rules are listed when
their condition holds on the item (the windows themselves need a stream: see the job).
A line that is not a valid ContentEvent is reported on stderr with its line number and skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from schemas.content import ContentEvent, decode_event
from schemas.errors import RecordError
from schemas.findings import text_part_of
from schemas.pipeline import PartClosed
from schemas.rule import Rule
from trackius import textcmd
from trackius.settings import Settings
from udfs.fusion import Content, matches, with_fired
from udfs.query import RuleIndex


def read_events(path: Path) -> Iterator[ContentEvent | RecordError]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield decode_event(line)
            except RecordError as exc:
                yield RecordError(f"line {number}: {exc}")


def rules_test(settings: Settings, rules: list[Rule], events_path: Path, errors: Any = sys.stderr) -> Iterator[str]:
    index = RuleIndex(rules)
    events = []
    for item in read_events(events_path):
        if isinstance(item, RecordError):
            print(json.dumps({"error": str(item)}), file=errors)
        else:
            events.append(item)
    core = textcmd.analyzer(settings)
    contents: dict[str, Content] = {}
    for event, findings in textcmd.analysed(core, index, events):
        content = contents.setdefault(event.content_key, Content(event.content_key))
        content.add(findings, event, audio_of_video=settings.sound_of_video)
    if any(event.parts for event in events):
        _analyse_media(settings, index, core, events, contents)
    for event in events:
        content = contents[event.content_key]
        matches(content, index, 0, closed_world=True)
        yield json.dumps({"content_key": event.content_key, "fired": list(with_fired(content))})


def _analyse_media(settings: Settings, index: RuleIndex, core: Any, events: list[ContentEvent],
                   contents: dict[str, Content]) -> None:
    """Every media part of every event through the job's pipeline; text read or heard in them
    through the text analysis; then each part closed, as AnalyzeMedia closes it."""
    from udfs.media_operators import analysed_parts, build_pipeline
    from udfs.media_pipeline import MediaText, PartRequest

    # the events file is the user's own: its file:// parts may be anywhere
    pipeline = build_pipeline(settings.replace(media_file_roots="/", refs_store="none"))
    try:
        pipeline.wants_text(index.scanner.size > 0, index.spoken)
        requests = [PartRequest(event.content_key, event.content_key, part, event.collected_at)
                    for event in events for part in analysed_parts(event.parts, settings.sound_of_video)]
        by_key = {event.content_key: event for event in events}
        texts: dict[tuple[str, str], list[str]] = {}
        for result in pipeline.run(requests, timeout_s=600):
            content = contents[result.content_key]
            if isinstance(result, MediaText):
                if result.text.strip():
                    text_part = result.text_part or text_part_of(result.part_id)
                    event = replace(by_key[result.content_key], text=result.text, parts=())
                    content.add(replace(core.analyse(event, index), part_id=text_part))
                    texts.setdefault((result.content_key, result.part_id), []).append(text_part)
            else:
                content.add(result)
        for request in requests:
            key = (request.content_key, request.part.part_id)
            contents[request.content_key].add(PartClosed(*key, tuple(texts.get(key, ()))))
    finally:
        pipeline.close()
