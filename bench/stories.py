"""Near-duplicate stories: how well edited reposts fold into one story, and what an assign costs
as the index grows.

    .venv/bin/python -m bench.stories [--bases 400] [--reposts 4] [--iterations 2000]
                                      [--out [bench/results/stories.json]]

Clustering: distinct tweets of the VADER ground truth (no two sharing 30 % of their words and word
pairs), each posted once more with `--reposts` edited copies: one to three words dropped, inserted
or replaced (more for longer tweets) and any of a link, "RT @x:", a case change, emoji and
hashtags. All posts go through one index in a shuffled order; precision and recall count pairs of
posts put in the same story against pairs of copies of the same tweet. Images: random pHashes with
bits flipped at 7 and 8, the distances the bucket pieces guarantee and nearly guarantee.

Cost: the index is filled with unrelated stories (random texts over the tweets' words, half with
a picture) and then timed for new posts, reposts of indexed stories and revisions of members,
each undone after timing so all meet the same index, with the store reads and writes each makes
(a MapState access each: RocksDB's cost is per access). text_signature is timed on its own.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.report import emit, host, percentiles, timed
from schemas.textnorm import words
from trackius.settings import REPO_ROOT, Settings
from udfs.stories import DictStore, StoryIndex, clean_words, text_signature

RESULTS = REPO_ROOT / "bench" / "results" / "stories.json"
TWEETS = Path("vader_groundtruth") / "tweets_GroundTruth.txt"
TTL_MS = 24 * 3600 * 1000
FILLERS = ("really", "just", "so", "omg", "today", "now", "lol", "wow", "here", "again")
EMOJI = ("🚀", "😂", "🔥", "🙏", "👀")


def tweets(data_dir: Path | None = None) -> list[str]:
    """The tweets of the VADER ground truth (id, rating, text per line)."""
    path = (data_dir or Settings.from_env().data_dir) / TWEETS
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.split("\t", 2)[2] for line in lines if line.count("\t") >= 2]


def _features(text: str) -> set[str]:
    found = clean_words(text)
    return set(found) | {f"{a} {b}" for a, b in pairwise(found)}


def distinct(texts: list[str], count: int, min_words: int = 8) -> list[str]:
    """The first `count` texts of at least `min_words` words that share under 30 % of their words
    and word pairs with every text kept before: the ground truth needs them unrelated."""
    kept: list[tuple[str, set[str]]] = []
    for text in texts:
        features = _features(text)
        if len(clean_words(text)) < min_words:
            continue
        if all(len(features & other) < 0.3 * len(features | other) for _, other in kept):
            kept.append((text, features))
            if len(kept) == count:
                break
    return [text for text, _ in kept]


def edited(text: str, rng: random.Random) -> str:
    """A repost: a few words dropped, inserted or replaced, then the noise reposts carry."""
    found = text.split()
    for _ in range(rng.randint(1, max(1, min(3, len(found) // 8)))):
        at = rng.randrange(len(found))
        action = rng.choice(("drop", "insert", "replace"))
        if action == "drop" and len(found) > 8:
            del found[at]
        elif action == "insert":
            found.insert(at, rng.choice(FILLERS))
        else:
            found[at] = rng.choice(FILLERS)
    post = " ".join(found)
    if rng.random() < 0.5:
        post = rng.choice((post.upper(), post.lower()))
    if rng.random() < 0.5:
        post = f"RT @user{rng.randrange(1000)}: {post}"
    if rng.random() < 0.5:
        post += f" https://t.co/{rng.randrange(16**8):08x}"
    if rng.random() < 0.5:
        post += " " + rng.choice(EMOJI) + " #" + rng.choice(("news", "wow", "viral"))
    return post


def repost_set(texts: list[str], reposts: int, seed: int = 7) -> list[tuple[int, str]]:
    """(origin, post) for every text and `reposts` edited copies of it, in a shuffled order."""
    rng = random.Random(seed)
    posts = [(origin, post) for origin, text in enumerate(texts)
             for post in [text] + [edited(text, rng) for _ in range(reposts)]]
    rng.shuffle(posts)
    return posts


def pair_scores(truth: list[int], predicted: list[str]) -> dict[str, float]:
    """Pairwise precision and recall of a clustering: pairs put together that belong together."""
    both = sum(c * (c - 1) // 2 for c in Counter(zip(truth, predicted, strict=True)).values())
    together = sum(c * (c - 1) // 2 for c in Counter(predicted).values())
    belong = sum(c * (c - 1) // 2 for c in Counter(truth).values())
    return {"precision": round(both / max(together, 1), 4), "recall": round(both / max(belong, 1), 4)}


def cluster(posts: list[tuple[int, str]]) -> dict[str, Any]:
    index = StoryIndex(DictStore(), DictStore(), TTL_MS)
    truth, predicted = [], []
    for at_ms, (origin, post) in enumerate(posts):
        signature = text_signature(post)
        if signature is not None:
            truth.append(origin)
            predicted.append(index.assign(f"post-{at_ms}", signature, (), at_ms).story_id)
    return {**pair_scores(truth, predicted), "posts": len(posts), "clustered": len(truth),
            "stories": len(set(predicted)), "origins": len(set(truth))}


def image_recall(trials: int, rng: random.Random) -> dict[str, float]:
    """Share of pictures found again with 7 and 8 of their 64 bits flipped, among 1,000 others."""
    out = {}
    for flips in (7, 8):
        index = StoryIndex(DictStore(), DictStore(), TTL_MS)
        hashes = [rng.getrandbits(64) for _ in range(1000)]
        for n, phash in enumerate(hashes):
            index.assign(f"img-{n}", None, (phash,), 0)
        found = 0
        for trial in range(trials):
            phash = hashes[trial % len(hashes)]
            copy = phash ^ sum(1 << bit for bit in rng.sample(range(64), flips))
            found += index.assign(f"copy-{flips}-{trial}", None, (copy,), 1).method == "image"
        out[f"recall_{flips}_bits"] = round(found / trials, 4)
    return out


@dataclass
class CountingStore(DictStore):
    """A DictStore that counts accesses (each is one MapState access in the job) and can undo
    its writes, so every timed assign meets the same index."""

    reads: int = 0
    writes: int = 0
    undo: list[tuple[str, Any]] = field(default_factory=list)

    def get(self, key: str) -> Any | None:
        self.reads += 1
        return super().get(key)

    def put(self, key: str, value: Any) -> None:
        self.writes += 1
        self.undo.append((key, self.data.get(key)))
        super().put(key, value)

    def remove(self, key: str) -> None:
        self.writes += 1
        self.undo.append((key, self.data.get(key)))
        super().remove(key)

    def rollback(self) -> None:
        while self.undo:
            key, value = self.undo.pop()
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


def random_texts(vocabulary: list[str], rng: random.Random) -> Iterator[str]:
    while True:
        yield " ".join(rng.choices(vocabulary, k=rng.randint(12, 24)))


def cost(size: int, vocabulary: list[str], iterations: int, rng: random.Random) -> dict[str, Any]:
    """Time per assign (µs) and store accesses per assign, with `size` stories indexed."""
    stories, buckets = CountingStore(), CountingStore()
    index = StoryIndex(stories, buckets, TTL_MS)
    texts = random_texts(vocabulary, rng)
    indexed = []
    for n in range(size):
        text, image = next(texts), (rng.getrandbits(64),) if n % 2 else ()
        index.assign(f"story-{n}", text_signature(text), image, n)
        indexed.append((text, image))
    stories.undo.clear()
    buckets.undo.clear()
    # In the job the index is serialised state, not Python objects: keep the garbage collector
    # from walking it during the timings.
    gc.collect()
    gc.freeze()
    out: dict[str, Any] = {"stories": size, "bytes_per_story": round(
        (len(pickle.dumps(stories.data)) + len(pickle.dumps(buckets.data))) / size)}
    cases: dict[str, Callable[[int], tuple]] = {
        "new": lambda n: (f"new-{n}", next(texts), (rng.getrandbits(64),) if n % 2 else ()),
        "repost": lambda n: (f"repost-{n}", *_repost(indexed[rng.randrange(size)], rng)),
        "revision": lambda n: (f"story-{rng.randrange(size)}", *indexed[0]),
    }
    for name, make in cases.items():
        prepared = [make(n) for n in range(iterations)]
        signed = [(key, text_signature(text), image) for key, text, image in prepared]
        reads, writes = stories.reads + buckets.reads, stories.writes + buckets.writes
        times = []
        for key, signature, image in signed:
            times.append(timed(partial(index.assign, key, signature, image, size + 1)) * 1000)
            stories.rollback()
            buckets.rollback()
        out[name] = {**percentiles(times, unit="_us"),
                     "reads": round((stories.reads + buckets.reads - reads) / iterations, 1),
                     "writes": round((stories.writes + buckets.writes - writes) / iterations, 1)}
    sample = [next(texts) for _ in range(iterations)]
    out["text_signature"] = percentiles([timed(partial(text_signature, text)) * 1000 for text in sample],
                                        unit="_us")
    return out


def _repost(story: tuple[str, tuple[int, ...]], rng: random.Random) -> tuple[str, tuple[int, ...]]:
    text, image = story
    return edited(text, rng), tuple(phash ^ (1 << rng.randrange(64)) for phash in image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, default=400)
    parser.add_argument("--reposts", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--out", type=Path, nargs="?", const=RESULTS, help=f"also write the JSON (default {RESULTS})")
    args = parser.parse_args()
    rng = random.Random(11)
    corpus = tweets()
    vocabulary = [w for text in corpus for w in words(text) if w.isalpha()]
    result = {
        "bench": "stories", "host": host(),
        "clustering": cluster(repost_set(distinct(corpus, args.bases), args.reposts)),
        "images": image_recall(2000, rng),
        "assign": [cost(size, vocabulary, args.iterations, rng) for size in (100, 10_000)],
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
