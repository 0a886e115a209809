"""Text-analysis core throughput on one core: the job's own batch function, no Flink around it.

For 10, 1,000 and 10,000 active queries it runs `TextAnalyzer.analyse_batch` on micro-batches
of real posts (the tweets of the VADER ground truth and the SMS collection, read from the
shared data) and reports texts per second and the per-batch time percentiles. The hot path
runs on every text: folding, extraction, language id, sentences, VADER per text and sentence,
the one-pass query scan, the spam classifier. Named entities (POS tagging and the binary NE
chunker) run only for texts an entity(...) rule could match, so they are measured apart.

The queries are generated, seeded, in the shapes social-listening users write (terms, phrases,
wildcards, NEAR/n, NOT, groups, field filters), from the posts' own vocabulary so that texts
really hit them. Results: a table on stdout and bench/results/text.json.

    python -m bench.text_core [--queries 10,1000,10000] [--batch 64] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import time
from pathlib import Path

from schemas.content import ContentEvent
from schemas.rule import Rule
from trackius.settings import REPO_ROOT, Settings
from trackius.textcmd import analyzer, event_for
from udfs.query import RuleIndex

RESULTS = REPO_ROOT / "bench" / "results"


def corpus(settings: Settings) -> list[str]:
    data = settings.data_dir
    def lines(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()

    tweets = [line.split("\t", 2)[2] for line in lines(data / "vader_groundtruth" / "tweets_GroundTruth.txt")
              if line.count("\t") >= 2]
    sms = [line.split("\t", 1)[1] for line in lines(data / "text_spam" / "SMSSpamCollection") if "\t" in line]
    return tweets + sms


def word_picker(texts: list[str], count: int, rng: random.Random):
    """Half the time a word of the texts, half a term that never occurs: most rules, like real
    ones, rarely fire."""
    words = sorted({w.lower() for t in texts for w in re.findall(r"[A-Za-z]{4,}", t)})
    rare = [f"brand{i}" for i in range(count)]

    def word() -> str:
        return rng.choice(words) if rng.random() < 0.5 else rng.choice(rare)

    return word


def queries(texts: list[str], count: int, seed: int = 7) -> list[Rule]:
    """`count` rules whose conditions look like real listening queries over the texts' words."""
    rng = random.Random(seed)
    word = word_picker(texts, count, rng)

    shapes = [
        lambda: f"{word()} AND {word()}",
        lambda: f'"{word()} {word()}" OR {word()}',
        lambda: f"{word()[:5]}* AND NOT {word()}",
        lambda: f"({word()} OR {word()}) NEAR/3 {word()}",
        lambda: f"{word()} AND (lang:en OR platform:x)",
        lambda: f"(${word()[:4]} OR #{word()}) AND sentiment < -0.3",
    ]
    return [Rule(f"q{i}", 1, condition=rng.choice(shapes)()) for i in range(count)]


def run(core, index: RuleIndex, events: list[ContentEvent], batch: int, seconds: float) -> dict:
    times, done, started = [], 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for i in range(0, len(events) - batch + 1, batch):
            t0 = time.perf_counter()
            core.analyse_batch(events[i:i + batch], index)
            times.append((time.perf_counter() - t0) * 1000)
            done += batch
            if time.perf_counter() - started >= seconds:
                break
    total_s = sum(times) / 1000
    q = statistics.quantiles(times, n=100)
    return {"texts": done, "texts_per_s": round(done / total_s), "batch_ms_p50": round(q[49], 2),
            "batch_ms_p95": round(q[94], 2), "batch_ms_p99": round(q[98], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", default="10,1000,10000")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as one operator subtask has
    settings = Settings.from_env()
    core = analyzer(settings)
    core.nlp.preload()
    texts = corpus(settings)
    random.Random(1).shuffle(texts)
    events = [event_for(text, i) for i, text in enumerate(texts)]
    results = {"machine": platform.processor() or platform.machine(), "cpus": 1, "batch": args.batch,
               "texts_in_corpus": len(texts), "hot_path": {}, "models": core.models}
    for i in range(0, min(len(events), 2048), args.batch):  # warm up: first-use costs are not throughput
        core.analyse_batch(events[i:i + args.batch], RuleIndex())
    print(f"{'queries':>8} {'texts/s':>9} {'batch p50':>10} {'p95':>8} {'p99 ms':>8}")
    for count in [int(n) for n in args.queries.split(",")]:
        t0 = time.perf_counter()
        index = RuleIndex(queries(texts, count))
        compile_ms = (time.perf_counter() - t0) * 1000
        row = run(core, index, events, args.batch, args.seconds) | {"compile_ms": round(compile_ms, 1)}
        results["hot_path"][str(count)] = row
        print(f"{count:>8} {row['texts_per_s']:>9} {row['batch_ms_p50']:>10} {row['batch_ms_p95']:>8} "
              f"{row['batch_ms_p99']:>8}   (compiled in {compile_ms:.0f} ms)")
    names = core.nlp
    sample = texts[:500]
    t0 = time.perf_counter()
    for text in sample:
        names.names(text, names.sentences(text, "en"))
    per_text = (time.perf_counter() - t0) / len(sample)
    results["names"] = {"texts_per_s": round(1 / per_text), "ms_per_text": round(per_text * 1000, 2)}
    print(f"named entities (tagger + binary chunker): {1 / per_text:.0f} texts/s, {per_text * 1000:.2f} ms per text")
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(RESULTS / "text.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
