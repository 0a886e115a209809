"""Tests of udfs/landmarks.py: landmark fingerprints and the clip index, on the shared audio."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest

from schemas.errors import MediaError
from trackius.settings import SHARED_DATA
from udfs.audio_distort import distort, excerpt
from udfs.landmarks import (
    FINGERPRINT_VERSION,
    ClipIndex,
    Landmarks,
    fingerprint,
    landmarks_from_bytes,
    landmarks_to_bytes,
)

MUSIC = SHARED_DATA / "audio" / "librosa"
SR = 22050
REFERENCES = {  # clip id -> file stem; the other shared clips stay out of the index
    "brahms": "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)",
    "vibeace": "Kevin_MacLeod_-_Vibe_Ace",
    "choice": "admiralbob77_-_Choice_-_Drum-bass",
}


def _load(path: Path) -> np.ndarray:
    samples, _ = librosa.load(path, sr=SR, mono=True)
    return samples


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    return {clip_id: _load(MUSIC / f"{stem}.ogg") for clip_id, stem in REFERENCES.items()}


@pytest.fixture(scope="module")
def index(clips: dict[str, np.ndarray]) -> ClipIndex:
    built = ClipIndex()
    for clip_id, samples in clips.items():
        built.add(clip_id, REFERENCES[clip_id], fingerprint(samples, SR))
    return built


def _excerpt(samples: np.ndarray, start_s: float, seconds: float) -> np.ndarray:
    return samples[int(start_s * SR) : int((start_s + seconds) * SR)]


def _with_noise(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    power = float(np.mean(samples**2)) / 10 ** (snr_db / 10)
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power), samples.size)
    return (samples + noise).astype(np.float32)


def _played_faster(samples: np.ndarray, factor: float) -> np.ndarray:
    """A speed change (tempo and pitch together): resampled, then played back at SR."""
    return librosa.resample(samples, orig_sr=SR, target_sr=int(SR * factor))


CASES = [("brahms", 12.0), ("vibeace", 31.5), ("choice", 3.2)]
# Vibe Ace repeats its 3.69 s bars sample for sample: every repeat is an equally right offset.
LOOP_S = {"vibeace": 3.69}


def _same_moment(clip_id: str, found_s: float, true_s: float, tolerance: float) -> bool:
    """Offsets agree within tolerance, or differ by whole loops of a looped clip."""
    loop = LOOP_S.get(clip_id)
    laps = round((found_s - true_s) / loop) if loop else 0
    return abs(found_s - true_s - laps * (loop or 0.0)) <= tolerance + 0.02 * abs(laps)


def test_fingerprint_is_typed_sorted_and_deterministic(clips: dict[str, np.ndarray]) -> None:
    """Hashes are uint32, anchor frames int32 in time order, and a re-run gives the same marks."""
    marks = fingerprint(_excerpt(clips["brahms"], 5, 5), SR)
    again = fingerprint(_excerpt(clips["brahms"], 5, 5), SR)
    assert marks.hashes.dtype == np.uint32 and marks.frames.dtype == np.int32
    assert len(marks) > 100
    assert np.all(np.diff(marks.frames) >= 0)
    assert np.array_equal(marks.hashes, again.hashes)
    assert marks.duration_s == pytest.approx(5.0, abs=0.01)


@pytest.mark.parametrize(("clip_id", "start_s"), CASES)
def test_five_second_excerpt_is_found_at_its_offset(
    index: ClipIndex, clips: dict[str, np.ndarray], clip_id: str, start_s: float
) -> None:
    """A clean 5 s excerpt matches its reference with the offset within 0.1 s."""
    found = index.match(fingerprint(_excerpt(clips[clip_id], start_s, 5), SR))
    assert found is not None and found.clip_id == clip_id
    assert found.name == REFERENCES[clip_id]
    assert found.offset_s == pytest.approx(start_s, abs=0.1)
    assert 0 < found.confidence <= 1 and found.score >= index.min_score


@pytest.mark.parametrize(("clip_id", "start_s"), CASES)
def test_excerpt_under_white_noise_at_10_db_is_found(
    index: ClipIndex, clips: dict[str, np.ndarray], clip_id: str, start_s: float
) -> None:
    """White noise at 10 dB SNR does not hide a 5 s excerpt."""
    noisy = _with_noise(_excerpt(clips[clip_id], start_s, 5), 10.0)
    found = index.match_audio(noisy, SR)
    assert found is not None and found.clip_id == clip_id
    assert _same_moment(clip_id, found.offset_s, start_s, 0.1)


@pytest.mark.parametrize("factor", [0.95, 1.05])
@pytest.mark.parametrize(("clip_id", "start_s"), CASES[:2])
def test_excerpt_at_another_speed_is_found(
    index: ClipIndex, clips: dict[str, np.ndarray], clip_id: str, start_s: float, factor: float
) -> None:
    """A 5 s excerpt played 5 % faster or slower (pitch shifted too) still matches."""
    changed = _played_faster(_excerpt(clips[clip_id], start_s, 5), factor)
    assert index.match(fingerprint(changed, SR)) is None or factor == 1.0  # plain hashes break
    found = index.match_audio(changed, SR)
    assert found is not None and found.clip_id == clip_id
    assert found.offset_s == pytest.approx(start_s, abs=0.15)
    assert found.speed == pytest.approx(1 / factor, abs=0.015)


def test_audio_outside_the_index_does_not_match(index: ClipIndex) -> None:
    """Other music, speech, silence and white noise find nothing at any speed."""
    others = {
        "fishin": _excerpt(_load(MUSIC / "Karissa_Hobbs_-_Lets_Go_Fishin.ogg"), 40, 10),
        "trumpet": _load(MUSIC / "sorohanro_-_solo-trumpet-06.ogg"),
        "speech": _load(SHARED_DATA / "audio" / "speech" / "jfk.flac"),
        "silence": np.zeros(10 * SR, np.float32),
        "noise": np.random.default_rng(3).normal(0, 0.1, 10 * SR).astype(np.float32),
    }
    for name, samples in others.items():
        assert index.match_audio(samples, SR) is None, name


def test_short_input_and_silence_give_none_without_errors(index: ClipIndex) -> None:
    """0.3 s of music, an empty array and silence are handled and match nothing."""
    short = _load(MUSIC / f"{REFERENCES['brahms']}.ogg")[: int(0.3 * SR)]
    for samples in (short, np.zeros(0, np.float32), np.zeros(SR * 2, np.float32)):
        assert index.match(fingerprint(samples, SR)) is None
        assert index.match_audio(samples, SR) is None
    assert len(fingerprint(np.zeros(SR * 2, np.float32), SR)) == 0


def test_remove_forgets_a_clip(clips: dict[str, np.ndarray]) -> None:
    """After remove the clip no longer matches, the others still do, and len follows."""
    small = ClipIndex()
    for clip_id in ("brahms", "vibeace"):
        small.add(clip_id, clip_id, fingerprint(clips[clip_id], SR))
    query = fingerprint(_excerpt(clips["brahms"], 20, 5), SR)
    assert small.match(query) is not None
    small.remove("brahms")
    small.remove("never-added")
    assert len(small) == 1
    assert small.match(query) is None
    found = small.match(fingerprint(_excerpt(clips["vibeace"], 10, 5), SR))
    assert found is not None and found.clip_id == "vibeace"


def test_adding_an_id_again_replaces_the_clip(clips: dict[str, np.ndarray]) -> None:
    """Re-adding an id points it at the new landmarks, not both."""
    small = ClipIndex()
    small.add("x", "first", fingerprint(clips["brahms"], SR))
    small.add("x", "second", fingerprint(clips["vibeace"], SR))
    assert len(small) == 1
    assert small.match(fingerprint(_excerpt(clips["brahms"], 20, 5), SR)) is None
    found = small.match(fingerprint(_excerpt(clips["vibeace"], 20, 5), SR))
    assert found is not None and found.name == "second"


def test_empty_index_and_stereo_input() -> None:
    """An empty index matches nothing; (channels, samples) input is averaged to mono."""
    rng = np.random.default_rng(1)
    stereo = rng.normal(0, 0.1, (2, SR)).astype(np.float32)
    assert ClipIndex().match(fingerprint(stereo, SR)) is None
    mono = fingerprint(stereo.mean(axis=0), SR)
    assert np.array_equal(fingerprint(stereo, SR).hashes, mono.hashes)
    assert isinstance(mono, Landmarks)


def test_sparse_vote_count_agrees_with_dense() -> None:
    """The sort-based vote count used for huge key ranges picks the same window as bincount."""
    from udfs.landmarks import _best_window

    keys = np.random.default_rng(2).integers(0, 5000, 3000)
    keys = np.concatenate([keys, np.full(40, 1234), np.full(30, 1235)])
    assert _best_window(keys, 5001) == (1234, _best_window(keys, 1 << 27)[1])
    assert _best_window(keys, 1 << 27)[0] == 1234


def test_landmarks_round_trip_through_bytes(clips: dict[str, np.ndarray]) -> None:
    """Bytes give back the same hashes, frames, duration and fingerprint version; empty too."""
    marks = fingerprint(_excerpt(clips["choice"], 2, 6), SR)
    for original in (marks, Landmarks(np.empty(0, np.uint32), np.empty(0, np.int32), 0.25)):
        back = landmarks_from_bytes(landmarks_to_bytes(original))
        assert np.array_equal(back.hashes, original.hashes) and back.hashes.dtype == np.uint32
        assert np.array_equal(back.frames, original.frames) and back.frames.dtype == np.int32
        assert back.duration_s == original.duration_s
        assert back.version == FINGERPRINT_VERSION == original.version


def test_stored_landmarks_of_another_hashing_say_so() -> None:
    """The fingerprint version travels with the bytes, so a caller can re-fingerprint."""
    old = Landmarks(np.array([7], np.uint32), np.array([3], np.int32), 1.0, version="lm1")
    assert landmarks_from_bytes(landmarks_to_bytes(old)).version == "lm1" != FINGERPRINT_VERSION


def test_corrupt_landmark_bytes_raise_media_error(clips: dict[str, np.ndarray]) -> None:
    """Truncated or padded data, a foreign magic and another format version raise "corrupt"."""
    data = landmarks_to_bytes(fingerprint(_excerpt(clips["brahms"], 1, 3), SR))
    bad = [data[:-1], data + b"\0", data[:5], b"", b"RIFF" + data[4:], data[:4] + b"\x02" + data[5:]]
    for blob in bad:
        with pytest.raises(MediaError) as info:
            landmarks_from_bytes(blob)
        assert info.value.code == "corrupt"


SPEECH = [SHARED_DATA / "audio" / "speech" / "jfk.flac", MUSIC / "198-209-0000.ogg"]
HARD = ("white_10db", "babble_10db", "mp3", "speed_0.95", "speed_1.05", "combined")


def test_distorted_five_second_excerpts_are_found(
    index: ClipIndex, clips: dict[str, np.ndarray]
) -> None:
    """Seeded 5 s excerpts under 10 dB white or babble noise, MP3, +-5 % speed and all of them
    at once: at least 34 of 36 are found at the right offset (or a loop of it)."""
    rng = np.random.default_rng(7)
    voices = [_load(path) for path in SPEECH]
    hits = 0
    for clip_id, samples in clips.items():
        for _ in range(2):
            clip, start = excerpt(samples, SR, 5.0, rng)
            for kind in HARD:
                found = index.match_audio(distort(clip, SR, kind, rng, voices), SR)
                hits += found is not None and found.clip_id == clip_id and _same_moment(
                    clip_id, found.offset_s, start, 0.5)
    assert hits >= 34


def test_distorted_audio_outside_the_index_matches_nothing(index: ClipIndex) -> None:
    """Distorted 5 s excerpts of other music and of speech match no reference."""
    rng = np.random.default_rng(11)
    voices = [_load(path) for path in SPEECH]
    others = [_load(MUSIC / "Karissa_Hobbs_-_Lets_Go_Fishin.ogg"), *voices]
    for samples in others:
        for _ in range(2):
            clip, _ = excerpt(samples, SR, 5.0, rng)
            for kind in ("original", *HARD):
                assert index.match_audio(distort(clip, SR, kind, rng, voices), SR) is None, kind


def test_a_query_skips_its_commonest_hashes_beyond_its_posting_budget() -> None:
    """Lookups touch at most max_touched postings: the commonest hashes go first, rare ones vote."""
    common = Landmarks(np.full(40, 99, np.uint32), np.arange(40, dtype=np.int32), 2.0)
    rare = Landmarks(np.array([7], np.uint32), np.array([5], np.int32), 2.0)
    query = Landmarks(np.array([99, 7], np.uint32), np.array([0, 0], np.int32))
    index = ClipIndex(min_score=1, min_confidence=0.0)
    for number in range(5):
        index.add(f"c{number}", f"c{number}", common)
    index.add("rare", "rare", rare)
    index.max_touched = 1_000
    assert index.match(query).clip_id != "rare"  # 200 postings of 99 fit: they outvote
    index.max_touched = 100
    found = index.match(query)
    assert found is not None and found.clip_id == "rare" and found.score == 1


def test_a_winning_offset_in_the_first_bin_is_credited_to_its_own_clip() -> None:
    """Votes all in a clip's lowest offset bin are not read as the previous clip's (a pair of
    neighbouring bins must not span two clips)."""
    marks = Landmarks(np.arange(1, 31, dtype=np.uint32), np.zeros(30, np.int32), 2.0)
    index = ClipIndex(min_score=1, min_confidence=0.0)
    index.add("first", "first", Landmarks(np.array([500], np.uint32), np.array([90], np.int32)))
    index.add("second", "second", marks)
    query = Landmarks(np.append(marks.hashes, 500).astype(np.uint32), np.zeros(31, np.int32))
    found = index.match(query)
    assert found is not None and found.clip_id == "second" and found.score == 30


def test_postings_are_packed_into_one_word_each() -> None:
    """The index holds one uint32 a posting plus the hash table (nbytes counts both)."""
    marks = Landmarks(np.array([3, 5, 5], np.uint32), np.array([1, 2, 4000], np.int32), 130.0)
    index = ClipIndex()
    index.add("a", "a", marks)
    index.match(marks)
    assert index.nbytes == 4 * 3 + 4 * 7
