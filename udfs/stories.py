"""Stories, not floods: the pure core that folds near-duplicate posts into one story.

A repost by many accounts should raise one alert that counts its reposts. A Flink operator keyed
by rule id calls `StoryIndex.assign` for each item that fired the rule: the answer names the story,
its member count, and whether the item opened it (a new alert) or joined it (a new revision).

The index lives in two string-keyed stores the caller supplies (`Store`: Flink's MapState has
these methods), so a lookup touches a few small entries instead of unpickling one big object:
  * stories: "s:<id>" -> `Story` (the first member's signatures, count, first and last seen; never
    the member list) and "m:<content key>" -> (id, first_seen_ms), to recognise revisions.
  * buckets: "t:<band>:<hex>" -> ids of stories with that MinHash band (text LSH), and
    "i:<piece>:<hex>" -> (id, pHash) of stories whose pHash has that 8-bit piece. Each keeps the
    BUCKET_CAP stories last added or matched through it: a lookup reads 20 + 8 per image buckets
    however many stories there are, then verifies candidates exactly against their records.
A story unseen for `ttl_ms` is stale: treated as missing, its entries removed when a lookup
touches them. What nothing touches again is left to Flink's state TTL (set it on both MapStates,
longer than ttl_ms).

Deterministic: hashes come from blake2b and fixed constants, never Python's salted `hash()`, and
candidates are visited in sorted order. Arrival order matters only through which member comes
first: it names the story (blake2b of its content key, so a replay gives the same id) and its
signatures represent the story.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np

from schemas.textnorm import words

# Fewer words than this carry too little to tell posts apart: "gm", "lol" or "to the moon" posted
# by unrelated accounts must never become one story.
MIN_WORDS = 6
PERMUTATIONS = 60
# 20 bands of 3 rows make a text a candidate with probability 1 - (1 - J^3)^20: 0.93 at Jaccard
# 0.5, 0.99 at 0.6, 0.42 at 0.3 and 0.02 at 0.1. 16 bands of 4 rows (64 permutations) missed
# more reposts: pairwise recall 0.93 rather than 0.96 on bench.stories' repost set.
BANDS = 20
ROWS = PERMUTATIONS // BANDS
# Features are words and word pairs. Two edited copies of one tweet (up to three words changed in
# each) estimate >= 0.5 in 97.6 % of pairs, >= 0.6 in only 90.5 %. Among the 3,500 VADER tweets the
# closest distinct posts reach 0.48 ("Haven't been this sore in a while." and a longer tweet that
# says it too) and 0.47 (one template: "I just ousted <name> as the mayor of <place>").
JACCARD_MIN = 0.5
# SimHash within 3 bits verifies too. On the repost set 4 % of copy pairs were that close, all
# verified by MinHash as well, and distinct tweets never came nearer than 12 bits: a cheap
# second opinion for long texts whose MinHash sample under-estimates, not a source of recall.
SIMHASH_MAX = 3
# known_images.HASH_MAX: unrelated images were never closer than 14 bits, copies within 2 to 8.
HASH_MAX = 8
# Eight 8-bit pieces: a pHash within 7 bits shares at least one piece exactly (pigeonhole); at 8
# bits it is missed only when each piece holds exactly one differing bit, 8^8 / C(64, 8) = 0.4 %
# of 8-bit differences. Nine 7-bit pieces would guarantee 8 bits, but their buckets hold twice as
# many unrelated stories, and copies sit nearer than 8 bits (test_stories pins both figures).
PIECES = 8
PIECE_BITS = 64 // PIECES
# A median-thresholded pHash sets about half its bits; one far from half comes from an image too
# flat for the median to split, and such images all agree with each other.
FLAT_BITS = 8
MAX_IMAGES = 4
BUCKET_CAP = 64
_RETWEET_MARKERS = frozenset({"rt", "mt", "via", "cc"})  # dropped when a handle follows
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MASK64 = (1 << 64) - 1

Method = Literal["text", "image", "new", "member"]


class Store(Protocol):
    """A string-keyed mapping; Flink's MapState satisfies it. `get` answers None when absent."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def remove(self, key: str) -> None: ...


@dataclass
class DictStore:
    """A Store over a dict: the stand-in for MapState in tests and benchmarks."""

    data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any | None:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    def remove(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> list[tuple[str, Any]]:
        return list(self.data.items())


class RotatingStore:
    """A Store in memory whose entries are forgotten unless touched: two generations, the older
    dropped every `period_ms` (`rotate`), an entry read from it moved into the newer. An entry
    lives between one and two periods after its last use, so memory follows what was used lately.
    For the job's story index: one MapState access through thread mode's JNI costs more than the
    whole lookup, and a new story writes some 28 bucket entries."""

    def __init__(self, period_ms: int) -> None:
        self.period_ms = period_ms
        self.current: dict[str, Any] = {}
        self.previous: dict[str, Any] = {}
        self.rotated_at: int | None = None

    def rotate(self, now_ms: int) -> None:
        if self.rotated_at is None:
            self.rotated_at = now_ms
        elif now_ms - self.rotated_at >= self.period_ms:
            self.previous, self.current, self.rotated_at = self.current, {}, now_ms

    def get(self, key: str) -> Any | None:
        value = self.current.get(key)
        if value is None and key in self.previous:
            value = self.current[key] = self.previous.pop(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self.current[key] = value
        self.previous.pop(key, None)

    def remove(self, key: str) -> None:
        self.current.pop(key, None)
        self.previous.pop(key, None)

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)


@dataclass(frozen=True)
class TextSignature:
    """A text's MinHash (PERMUTATIONS little-endian uint32) and 64-bit SimHash."""

    minhash: bytes
    simhash: int

    def jaccard(self, other: TextSignature) -> float:
        """Estimated Jaccard similarity of the two feature sets: the share of equal minima."""
        mine, theirs = np.frombuffer(self.minhash, "<u4"), np.frombuffer(other.minhash, "<u4")
        return float(np.count_nonzero(mine == theirs)) / PERMUTATIONS

    def matches(self, other: TextSignature, jaccard_min: float) -> bool:
        close = (self.simhash ^ other.simhash).bit_count() <= SIMHASH_MAX
        return close or self.jaccard(other) >= jaccard_min

    def bucket_keys(self) -> list[str]:
        """One LSH key per band: its rows folded into 64 bits (a collision costs a verification)."""
        rows = np.frombuffer(self.minhash, "<u4").astype(np.uint64).reshape(BANDS, ROWS)
        folded = np.zeros(BANDS, np.uint64)
        for row in rows.T:
            folded = _mix(folded * np.uint64(0x9E3779B97F4A7C15) ^ row)
        return [f"t:{band}:{value:016x}" for band, value in enumerate(folded.tolist())]


@dataclass(frozen=True)
class Story:
    """What the index keeps of a story: its first member's signatures and its counters."""

    text: TextSignature | None
    images: tuple[int, ...]
    count: int
    first_seen_ms: int
    last_seen_ms: int


@dataclass(frozen=True)
class StoryAssignment:
    """The story an item belongs to. similarity is 0..1 (1: identical), 1.0 for new stories and
    members seen before; method "member" means the item was already counted (a revision)."""

    story_id: str
    count: int
    new: bool
    similarity: float
    method: Method


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _constants(label: str) -> np.ndarray:
    # Derived from blake2b, not a numpy Generator, whose streams may change between versions.
    return np.array([_digest(f"{label}:{i}".encode()) for i in range(PERMUTATIONS)], np.uint64)


_MULTIPLIERS = _constants("trackius.stories.minhash.a") | np.uint64(1)
_OFFSETS = _constants("trackius.stories.minhash.b")
_BITS = np.arange(64, dtype=np.uint64)


@lru_cache(maxsize=65536)
def _word_hash(word: str) -> int:
    return _digest(word.encode())


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def clean_words(text: str) -> list[str]:
    """The words that say what a post is, without what reposts add or change: links, handles
    and "RT @x:", a trailing run of hashtags (inline ones keep their word), case and accents,
    punctuation and emoji (which `words` never yields)."""
    found = words(_URL.sub(" ", html.unescape(text)))
    kept = [w for i, w in enumerate(found) if not w.startswith("@") and not (
        w in _RETWEET_MARKERS and i + 1 < len(found) and found[i + 1].startswith("@"))]
    while kept and kept[-1].startswith("#"):
        kept.pop()
    return [w.lstrip("#") for w in kept]


def text_signature(text: str) -> TextSignature | None:
    """MinHash and SimHash of a text's words and word pairs; None below MIN_WORDS words."""
    found = clean_words(text)
    if len(found) < MIN_WORDS:
        return None
    hashed = np.array([_word_hash(w) for w in found], np.uint64)
    pairs = hashed[:-1] * np.uint64(0x9E3779B97F4A7C15) ^ hashed[1:]  # order-sensitive
    features = np.unique(_mix(np.concatenate([hashed, pairs])))
    # Multiply-shift hashing: the top 32 bits of a*x+b (mod 2^64) form one permutation each.
    minima = ((features[:, None] * _MULTIPLIERS + _OFFSETS) >> np.uint64(32)).min(axis=0)
    votes = ((features[:, None] >> _BITS) & np.uint64(1)).sum(axis=0) * 2 > len(features)
    simhash = int(np.bitwise_or.reduce(np.where(votes, np.uint64(1) << _BITS, np.uint64(0))))
    return TextSignature(minima.astype("<u4").tobytes(), simhash)


def usable_images(hashes: tuple[int | None, ...]) -> tuple[int, ...]:
    """The distinct pHashes worth matching (at most MAX_IMAGES), as unsigned 64-bit ints: a hash
    read back from a signed long is negative; None and flat hashes are dropped."""
    found: list[int] = []
    for value in hashes:
        if value is None:
            continue
        unsigned = value & _MASK64
        if FLAT_BITS <= unsigned.bit_count() <= 64 - FLAT_BITS and unsigned not in found:
            found.append(unsigned)
    return tuple(found[:MAX_IMAGES])


def image_keys(phash: int) -> list[str]:
    mask = (1 << PIECE_BITS) - 1
    return [f"i:{piece}:{(phash >> (piece * PIECE_BITS)) & mask:02x}" for piece in range(PIECES)]


def image_distance(mine: tuple[int, ...], theirs: tuple[int, ...]) -> int:
    """The smallest Hamming distance between any two of the images (65 when either has none)."""
    return min(((a ^ b).bit_count() for a in mine for b in theirs), default=65)


def story_id_of(content_key: str) -> str:
    return hashlib.blake2b(content_key.encode(), digest_size=8).hexdigest()


def _owners(key: str, entries: tuple) -> list[str]:
    """The story ids of a bucket's entries: text buckets hold ids, image buckets (id, pHash)."""
    return list(entries) if key.startswith("t:") else [entry[0] for entry in entries]


def _probes(text_keys: list[str], images: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The buckets a lookup reads, each with the query images its entries are compared to
    (none for text buckets, whose candidates are all verified against the story record)."""
    probes: dict[str, tuple[int, ...]] = dict.fromkeys(text_keys, ())
    for image in images:
        for key in image_keys(image):
            probes[key] = probes.get(key, ()) + (image,)
    return probes


class StoryIndex:
    """Assigns items to stories over the caller's stores (see the module docstring)."""

    def __init__(self, stories: Store, buckets: Store, ttl_ms: int, *,
                 jaccard_min: float = JACCARD_MIN, bucket_cap: int = BUCKET_CAP) -> None:
        self.stories, self.buckets, self.ttl_ms = stories, buckets, ttl_ms
        self.jaccard_min, self.bucket_cap = jaccard_min, bucket_cap

    def assign(self, content_key: str, text: TextSignature | None, images: tuple[int | None, ...],
               at_ms: int) -> StoryAssignment:
        """The story of one item, recorded: a member seen before keeps its story and count;
        otherwise the best verified candidate gains a member, or the item opens a new story."""
        images = usable_images(images)
        member = self._member_story(content_key, at_ms)
        if member is not None:
            story_id, story = member
            self.stories.put(f"s:{story_id}", replace(story, last_seen_ms=max(story.last_seen_ms, at_ms)))
            return StoryAssignment(story_id, story.count, False, 1.0, "member")
        text_keys = text.bucket_keys() if text else []
        probes = _probes(text_keys, images)
        read = {key: self.buckets.get(key) or () for key in probes}
        best, dead = self._best_candidate(read, probes, text, images, at_ms)
        method: Method
        if best is None:
            story_id, story = story_id_of(content_key), Story(text, images, 1, at_ms, at_ms)
            added_text_keys, added_images, similarity, method = text_keys, images, 1.0, "new"
        else:
            story_id, old, similarity, method = best
            story, added_images = _joined(old, text, images, at_ms)
            added_text_keys = text_keys if old.text is None else []
        self._write_buckets(read, dead, story_id, _entries(story_id, added_text_keys, added_images))
        self.stories.put(f"s:{story_id}", story)
        self.stories.put(f"m:{content_key}", (story_id, story.first_seen_ms))
        return StoryAssignment(story_id, story.count, best is None, similarity, method)

    def _live(self, story_id: str, at_ms: int) -> Story | None:
        story = self.stories.get(f"s:{story_id}")
        if story is not None and at_ms - story.last_seen_ms > self.ttl_ms:
            self.stories.remove(f"s:{story_id}")
            return None
        return story

    def _member_story(self, content_key: str, at_ms: int) -> tuple[str, Story] | None:
        recorded = self.stories.get(f"m:{content_key}")
        if recorded is None:
            return None
        story_id, first_seen_ms = recorded
        story = self._live(story_id, at_ms)
        if story is None or story.first_seen_ms != first_seen_ms:  # expired, or a later story
            self.stories.remove(f"m:{content_key}")
            return None
        return story_id, story

    def _best_candidate(self, read: dict[str, tuple], probes: dict[str, tuple[int, ...]],
                        text: TextSignature | None, images: tuple[int, ...], at_ms: int,
                        ) -> tuple[tuple[str, Story, float, Method] | None, set[str]]:
        """The most similar live story that verifies, and the stale ids seen on the way. Image
        entries carry their hash, so far ones are skipped without reading their story."""
        candidates: set[str] = set()
        for key, entries in read.items():
            if probes[key]:
                candidates.update(story_id for probe in probes[key] for story_id, phash in entries
                                  if (phash ^ probe).bit_count() <= HASH_MAX)
            else:
                candidates.update(entries)
        best, dead = None, set()
        for story_id in sorted(candidates):
            story = self._live(story_id, at_ms)
            if story is None:
                dead.add(story_id)
                continue
            scored = self._similarity(story, text, images)
            if scored is not None and (best is None or scored[0] > best[2]):
                best = (story_id, story, *scored)
        return best, dead

    def _similarity(self, story: Story, text: TextSignature | None,
                    images: tuple[int, ...]) -> tuple[float, Method] | None:
        """The better of the verified text similarity (estimated Jaccard) and image similarity
        (1 - distance / 64); None when neither verifies."""
        found: list[tuple[float, Method]] = []
        if text is not None and story.text is not None and text.matches(story.text, self.jaccard_min):
            found.append((text.jaccard(story.text), "text"))
        distance = image_distance(story.images, images)
        if distance <= HASH_MAX:
            found.append((1 - distance / 64, "image"))
        return max(found, default=None)

    def _write_buckets(self, read: dict[str, tuple], dead: set[str], story_id: str,
                       added: dict[str, list]) -> None:
        """Drop stale ids from the buckets read; put the story last (most recent) in those that
        hold it or that it is added to, keeping the last bucket_cap entries. Writes only changes."""
        for key, entries in read.items():
            owners = _owners(key, entries)
            if story_id not in owners and dead.isdisjoint(owners):
                if key in added:  # the common cases first: nothing to change, or one to append
                    self.buckets.put(key, (entries + tuple(added[key]))[-self.bucket_cap:])
                continue
            pairs = list(zip(entries, owners, strict=True))
            others = [e for e, owner in pairs if owner not in dead and owner != story_id]
            mine = [e for e, owner in pairs if owner == story_id]
            mine += [e for e in added.get(key, []) if e not in mine]
            updated = tuple(others + mine)[-self.bucket_cap:]
            if updated == entries:
                continue
            if updated:
                self.buckets.put(key, updated)
            else:
                self.buckets.remove(key)


def _joined(story: Story, text: TextSignature | None, images: tuple[int, ...],
            at_ms: int) -> tuple[Story, tuple[int, ...]]:
    """The story with one more member, and the member's images it adopts: those unlike the
    story's, up to MAX_IMAGES, so a text post reposted with a picture is then found by the picture
    alone. The member's text is adopted likewise when the story has none."""
    added_images = tuple(image for image in images
                         if image_distance((image,), story.images) > HASH_MAX)
    added_images = added_images[:MAX_IMAGES - len(story.images)]
    joined = replace(story, text=story.text or text, images=story.images + added_images,
                     count=story.count + 1, last_seen_ms=max(story.last_seen_ms, at_ms))
    return joined, added_images


def _entries(story_id: str, text_keys: list[str], images: tuple[int, ...]) -> dict[str, list]:
    """The bucket entries that index a story's newly recorded signatures."""
    added: dict[str, list] = {key: [story_id] for key in text_keys}
    for image in images:
        for key in image_keys(image):
            added.setdefault(key, []).append((story_id, image))
    return added
