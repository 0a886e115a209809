"""The media commands: `analyze image|video|audio FILE`, `identify image`, `eval image-id` and `refs`.

`analyze` runs the job's own pipeline (udfs/media_pipeline.py) on a local file or a URL and
prints the findings JSON the job would publish, one line per result (a video's partial findings
first when --progress is given). Everything here is a thin shell around the cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.codec import encode
from schemas.content import MediaPart
from schemas.errors import ConfigError
from schemas.findings import text_part_of
from trackius.settings import Settings

CLI_KEY = "rss:cli"


def uri_of(target: str) -> str:
    """A URL as given; a path as a file:// URI (so the job's fetcher reads it, checks included)."""
    if "://" in target or target.startswith("data:"):
        return target
    path = Path(target).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"{target}: no such file")
    return path.as_uri()


def analyze(settings: Settings, kind: str, targets: list[str], progress: bool = False,
            rules: Path | None = None, refs: Path | None = None) -> Iterator[str]:
    from udfs.media_operators import analysed_parts, build_pipeline
    from udfs.media_pipeline import MediaText, PartRequest

    # the files named on the command line are the user's own choice: any path may be read
    pipeline = build_pipeline(settings.replace(media_file_roots="/"))
    try:
        if refs is not None:
            index_directory(pipeline, kind, refs, settings)
        text, spoken = _text_analysis(settings, rules) if rules is not None else (None, ())
        pipeline.wants_text(text is not None, spoken)
        parts = [MediaPart(f"part-{i}", kind, uri_of(target)) for i, target in enumerate(targets)]
        requests = [PartRequest(CLI_KEY, CLI_KEY, part) for part in analysed_parts(parts, settings.sound_of_video)]
        # Final lines come out in the order of the inputs (parts finish in any order); a text
        # read in an image follows its image's line.
        ready: dict[str, list[str]] = {}
        order = [request.part.part_id for request in requests]
        for result in pipeline.run(requests, timeout_s=600):
            if isinstance(result, MediaText):
                read = ready.setdefault(result.part_id + "+", [])
                if text is not None and result.text.strip():
                    read.append(encode(text(result)))
            elif result.status == "partial":
                if progress:
                    yield encode(result)
            else:
                ready.setdefault(result.part_id, []).append(encode(result))
            while order and order[0] in ready and not _text_pending(ready, order[0]):
                part_id = order.pop(0)
                yield from ready.pop(part_id)
                yield from ready.pop(part_id + "+", [])
        for part_id in order:
            yield from ready.pop(part_id, [])
            yield from ready.pop(part_id + "+", [])
    finally:
        pipeline.close()


def _text_pending(ready: dict[str, list[str]], part_id: str) -> bool:
    """Whether the part's findings say its text is still being read (its line follows)."""
    return '"ocr_pending"' in ready[part_id][0] and part_id + "+" not in ready


def _text_analysis(settings: Settings, rules: Path) -> tuple[Any, tuple[str, ...]]:
    """The text findings of text read in an image or heard in audio, as the job's text analysis
    computes them; and the words and phrases the rules look for (spotted in speech)."""
    from dataclasses import replace

    from schemas.rule import load_rules_yaml
    from trackius import textcmd
    from udfs.query import RuleIndex

    index = RuleIndex(load_rules_yaml(rules.read_text(encoding="utf-8"), source=str(rules)))
    analyzer = textcmd.analyzer(settings)

    def analyse(read: Any) -> Any:
        found = analyzer.analyse(textcmd.event_for(read.text, 0), index)
        return replace(found, part_id=read.text_part or text_part_of(read.part_id))

    return analyse, index.spoken


def index_directory(pipeline: Any, kind: str, refs: Path, settings: Settings) -> int:
    """Index every reference file in `refs` (named by file name) as `identify` does; returns how
    many were indexed. Images use the match thresholds of the settings."""
    if kind == "audio":
        return index_audio_directory(pipeline.audio.analyzer, refs, settings.audio_max_seconds)
    from trackius.imageid import reference_index

    analyzer = pipeline.analyzer
    if analyzer.scenes is None:
        raise ConfigError("--refs needs the scenes model (MobileNetV2), which is not loaded")
    index, _, _ = reference_index(analyzer.scenes, refs)
    index.hash_max, index.embedding_min = settings.image_match_max_hash_bits, settings.image_match_min_cosine
    analyzer.index = index
    return len(index)


def refs_command(settings: Settings, action: str, kind: str, targets: list[str], name: str | None) -> Iterator[str]:
    """JSON lines of what was done; raises RefsFailed (after doing the rest) if an item failed."""
    from trackius import refs_client

    if action == "list":
        for reference in refs_client.list_refs(settings, kind):
            yield encode(reference)
        return
    if not targets:
        raise ConfigError(f"trackius refs {action}: give {'files' if action == 'add' else 'ref ids'}")
    try:
        if action == "remove":
            done = refs_client.remove(settings, kind, targets)
        else:
            done = refs_client.add(settings, kind, [Path(t) for t in targets], _signer(settings, kind), name=name)
    except refs_client.RefsFailed as failed:
        yield from _done_lines(action, failed.done)
        raise
    yield from _done_lines(action, done)


def _done_lines(action: str, done: list[Any]) -> Iterator[str]:
    for item in done:
        yield json.dumps({"ref_id": item, "removed": True}) if action == "remove" else encode(item)


def index_audio_directory(listener: Any, refs: Path, max_s: float) -> int:
    """Fingerprint and index every audio file in `refs`, named by file name."""
    from schemas.errors import MediaError
    from udfs.clip_refs import sign_clip

    for path in sorted(p for p in refs.iterdir() if p.is_file()):
        try:
            listener.add(path.name, path.name, sign_clip(path.read_bytes(), max_s))
        except MediaError:
            continue  # not audio (a licence note, a cover image): not a reference
    return len(listener)


def _signer(settings: Settings, kind: str) -> Any:
    if kind == "audio":
        from udfs.clip_refs import clip_signer

        return clip_signer(settings.audio_max_seconds)
    from udfs.visual import VisualAnalyzer

    analyzer = VisualAnalyzer.create(settings.model_dir, settings.vision_manifest)
    return analyzer.signer(settings.image_max_side, settings.image_max_pixels)
