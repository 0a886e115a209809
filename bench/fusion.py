"""Fusion and rule evaluation per content item, with 10, 1,000 and 10,000 active rules.

What the Fuse operator does per record, without Flink around it: the item's state unpickled,
the record added, the present facts looked up in the rule index, every candidate rule evaluated
with three-valued logic, evidence built for those that hold, the FusedAnalysis built once the
item is complete, the state pickled back; then, per match, what ShapeAlerts adds (story
assignment and the alert's revision). Items are real posts (the VADER tweets and the SMS
collection) with their term hits from the rules' own scanner, and for a third of them an image
(objects, faces, scene labels, sometimes a tracked reference) and for a sixth an audio part
(speech share, a clip); so each item is 1-3 records, as in the job.

Rules are generated, seeded, in the shapes users write, half about text and half joining text
with what was seen or heard (object, faces, scene, image_match, audio_match, said, speech_share).

    python -m bench.fusion [--rules 10,1000,10000] [--items 3000] [--out bench/results/fusion.json]
"""

from __future__ import annotations

import argparse
import pickle
import random
import time
from pathlib import Path

from bench.report import emit, host, percentiles
from bench.text_core import corpus, word_picker
from schemas.content import ContentEvent, MediaPart
from schemas.findings import Sentiment, TextFindings
from schemas.media import AudioSummary, Detection, KnownClip, KnownImage, MediaFindings, SceneLabel
from schemas.pipeline import PartClosed
from schemas.rule import Rule
from schemas.textnorm import fold
from trackius.settings import Settings
from udfs.alerting import RuleAlerts
from udfs.fusion import Content, matches, with_fired
from udfs.query import RuleIndex, Words
from udfs.stories import DictStore, RotatingStore, StoryIndex

OBJECTS = ("person", "car", "bus", "dog", "bicycle", "bottle", "cell phone", "laptop")
SCENES = ("seashore", "volcano", "stage", "restaurant", "library", "stadium")
REFS = 200  # reference images and clips the rules name


def rules(texts: list[str], count: int, seed: int = 11) -> list[Rule]:
    rng = random.Random(seed)
    word = word_picker(texts, count, rng)

    shapes = [
        lambda: f"{word()} AND {word()}",
        lambda: f'"{word()} {word()}" OR {word()}',
        lambda: f"{word()} AND sentiment < -0.3",
        lambda: f'{word()} AND object("{rng.choice(OBJECTS)}") >= {rng.randint(1, 3)}',
        lambda: f'image_match("ref-{rng.randrange(REFS)}") AND sentiment < -0.2',
        lambda: f'(faces >= 2 OR scene("{rng.choice(SCENES)}")) AND {word()}',
        lambda: f'audio_match("clip-{rng.randrange(REFS)}") OR said("{word()} {word()}")',
        lambda: f"speech_share > 0.5 AND {word()} AND NOT {word()}",
    ]
    return [Rule(f"r{i}", 1, condition=rng.choice(shapes)()) for i in range(count)]


def items(texts: list[str], index: RuleIndex, count: int, seed: int = 5) -> list[list]:
    """Each item as the records Fuse receives, in arrival order."""
    rng = random.Random(seed)
    made = []
    for i in range(count):
        text = rng.choice(texts)
        folded = fold(text)
        hits, entities = index.scanner.scan(Words.of(folded), text)
        parts, records = [], []
        if i % 3 == 0:
            parts.append(MediaPart("img", "image", "https://example.com/i.jpg"))
        if i % 6 == 0:
            parts.append(MediaPart("pod", "audio", "https://example.com/a.mp3"))
        event = ContentEvent(f"x:{i}", "x", f"s{i % 50}", f"a{i}", i * 1000, i * 1000, text=text, parts=tuple(parts))
        findings = TextFindings(event.content_key, Sentiment(rng.uniform(-1, 1), 0.2, 0.6, 0.2), hits=tuple(hits),
                                entities=tuple(entities), text_chars=len(text), analysed_at=1)
        records.append((findings, event))
        for part in parts:
            records.append((_media(event.content_key, part, rng), None))
            records.append((PartClosed(event.content_key, part.part_id), None))
        made.append(records)
    return made


def _media(key: str, part: MediaPart, rng: random.Random) -> MediaFindings:
    if part.kind == "image":
        objects = tuple(Detection(rng.choice(OBJECTS), 0.8, (0, 0, 1, 1)) for _ in range(rng.randint(0, 5)))
        faces = tuple(Detection("face", 0.9, (0, 0, 1, 1)) for _ in range(rng.randint(0, 3)))
        refs = (KnownImage(f"ref-{rng.randrange(REFS)}", "logo", "phash", 4),) if rng.random() < 0.2 else ()
        labels = tuple(SceneLabel(rng.choice(SCENES), rng.random()) for _ in range(3))
        return MediaFindings(key, part.part_id, "image", part.uri, "ok", objects=objects, faces=faces, labels=labels,
                             matches=refs, phash=f"{rng.getrandbits(64):016x}", analysed_at=2)
    clips = (KnownClip(f"clip-{rng.randrange(REFS)}", "jingle", "landmarks", 0.4, 1.0, 0.0),) if rng.random() < 0.2 else ()
    summary = AudioSummary(10.0, 10.0, "mp3", 44100, 2, speech_share=rng.random(), clips=clips)
    return MediaFindings(key, part.part_id, "audio", part.uri, "ok", audio=summary, analysed_at=2)


def run(index: RuleIndex, made: list[list]) -> dict:
    """Per record: Fuse's work; per match: ShapeAlerts' work. Timings in microseconds."""
    state: dict[str, bytes] = {}
    shapers: dict[str, RuleAlerts] = {}
    per_record, per_match, matched, started = [], [], 0, time.perf_counter()
    for records in made:
        for record, event in records:
            begun = time.perf_counter()
            key = record.content_key
            content = pickle.loads(state[key]) if key in state else Content(key)
            content.add(record, event, audio_of_video=False) if event else content.add(record)
            found = matches(content, index, 0)
            if content.expected and content.complete:
                content.fused(0, with_fired(content))
            state[key] = pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
            per_record.append((time.perf_counter() - begun) * 1e6)
            for match in found:
                begun = time.perf_counter()
                shaper = shapers.get(match.rule.rule_id)
                if shaper is None:
                    stories = StoryIndex(RotatingStore(86_400_000), RotatingStore(86_400_000), 86_400_000)
                    shaper = shapers[match.rule.rule_id] = RuleAlerts(stories, DictStore(), DictStore())
                shaper.on_match(match, 0, 0)
                per_match.append((time.perf_counter() - begun) * 1e6)
            matched += len(found)
    elapsed = time.perf_counter() - started
    return {
        "records": len(per_record), "items": len(made), "matches": matched,
        "fuse_per_record": percentiles(per_record, 1, "_us"),
        "shape_per_match": percentiles(per_match, 1, "_us") if per_match else None,
        "items_per_s": round(len(made) / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", default="10,1000,10000")
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    texts = corpus(Settings.from_env())
    report = {"host": host(), "results": {}}
    for count in (int(n) for n in args.rules.split(",")):
        index = RuleIndex(rules(texts, count))
        made = items(texts, index, args.items)
        run(index, made[:200])  # warm caches (parse, label names)
        report["results"][str(count)] = run(index, made)
    emit(report, args.out)


if __name__ == "__main__":
    main()
