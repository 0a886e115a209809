"""Sound-pattern core on the shared clips and generated sounds: per-second classes (with and
without Silero VAD), silence and noise, sudden loud events and their absence in steady music,
streaming equal to one-shot, bounded state over long streams, and awkward input (empty, NaN,
partial seconds, 8 and 44.1 kHz, integer stereo)."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from bench.sounds import at_db, gunshot, pink, real_clips, synthetic_clips, vad_probabilities
from udfs.sound_features import Second
from udfs.sounds import CLASSES, SoundProfile, SoundTracker, classify, profile

SR = 16000
# Lowest share of seconds in the expected class, per clip: measured (bench/results/sounds.json)
# less a margin of about 0.1, so a real regression fails but a last-digit change does not.
WITHOUT_VAD = {"brahms": 0.7, "vibeace": 0.9, "choice": 0.75, "fishin": 0.9, "nutcracker": 0.85,
               "libri": 0.8, "jfk": 0.65, "wake_hey_jane": 1.0}
WITH_VAD = {"brahms": 0.8, "vibeace": 0.9, "choice": 0.9, "fishin": 0.65, "nutcracker": 0.9,
            "libri": 0.9, "jfk": 0.8, "wake_hey_jane": 1.0}


@pytest.fixture(scope="module")
def clips() -> dict[str, tuple[str, np.ndarray]]:
    return real_clips()


@pytest.fixture(scope="module")
def probs(clips: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return vad_probabilities(clips)


def share(result: SoundProfile, label: str) -> float:
    return result.seconds.count(label) / len(result.seconds)


def test_shared_clips_without_vad(clips: dict[str, tuple[str, np.ndarray]]) -> None:
    """Music clips are mostly music and speech clips mostly speech from the audio alone."""
    for name, floor in WITHOUT_VAD.items():
        want, samples = clips[name]
        result = profile(samples, SR)
        assert share(result, want) >= floor, (name, result.shares)
        assert result.shares[want] == max(result.shares.values())


def test_shared_clips_with_vad(clips: dict[str, tuple[str, np.ndarray]], probs: dict[str, np.ndarray]) -> None:
    """VAD makes speech surer; the song with vocals keeps a majority of music but has sung
    seconds read as speech, and the instrumental clips have almost none."""
    for name, floor in WITH_VAD.items():
        want, samples = clips[name]
        assert share(profile(samples, SR, probs[name]), want) >= floor, name
    fishin = profile(clips["fishin"][1], SR, probs["fishin"])
    assert 0.05 <= fishin.shares["speech"] <= 0.35
    for name in ("brahms", "choice", "nutcracker", "vibeace"):
        assert profile(clips[name][1], SR, probs[name]).shares["speech"] <= 0.05, name


def test_short_wake_word_clips_are_speech(clips: dict[str, tuple[str, np.ndarray]]) -> None:
    """Clips of 0.6-1 s make one second each (a part of >= 0.5 s counts) and it is speech."""
    for name in ("wake_alexa_test", "wake_hey_mycroft_test"):
        assert profile(clips[name][1], SR).seconds == ("speech",), name


def test_silence_and_generated_sounds() -> None:
    """Digital zero and -60 dBFS hiss are silence; noise, claps, hum, slams and chirps are other."""
    for name, (want, samples) in synthetic_clips().items():
        result = profile(samples, SR)
        assert len(result.seconds) == 10
        assert share(result, want) >= (1.0 if want == "silence" else 0.8), (name, result.shares)
    zeros = profile(np.zeros(3 * SR, np.float32), SR)
    assert zeros.loudness_db == zeros.peak_db == -100.0 and zeros.events == ()


@pytest.mark.parametrize("background", ["zeros", "quiet", "normal"])
def test_gunshot_is_one_loud_event(background: str) -> None:
    """A burst 4.3 s into silence, -50 dBFS hiss or -30 dBFS pink noise is one event, on time."""
    rng = np.random.default_rng(1)
    base = {"zeros": np.zeros(8 * SR, np.float32), "quiet": at_db(rng.standard_normal(8 * SR), -50),
            "normal": at_db(pink(8 * SR, rng), -30)}[background]
    events = profile(gunshot(base, 4.3, level_db=-10), SR).events
    assert len(events) == 1
    assert events[0].at_s == pytest.approx(4.3, abs=0.03)
    assert events[0].jump_db >= 20 and events[0].peak_db > -12


def test_steady_music_has_no_loud_events(clips: dict[str, tuple[str, np.ndarray]]) -> None:
    """Loud continuous music (a pop song, an electronic track) gives no sudden-loud events."""
    for name in ("fishin", "vibeace"):
        assert profile(clips[name][1], SR).events == (), name
    assert profile(at_db(np.random.default_rng(2).standard_normal(5 * SR), -10), SR).events == ()


def test_vad_outweighs_the_audio_cues(clips: dict[str, tuple[str, np.ndarray]]) -> None:
    """A confident VAD makes a music second speech; silence stays silence whatever the VAD says."""
    music = _first_second(clips["vibeace"][1])
    assert classify(music, None) == "music" and classify(music, 0.9) == "speech"
    assert profile(np.zeros(SR, np.float32), SR, np.ones(32, np.float32)).seconds == ("silence",)


def _first_second(samples: np.ndarray) -> Second:
    from udfs.sound_features import Framer, summarise

    frames = Framer(SR).push(samples[:SR])
    assert frames is not None
    return summarise(frames)


def test_streaming_in_odd_chunks_equals_one_shot(clips: dict[str, tuple[str, np.ndarray]],
                                                 probs: dict[str, np.ndarray]) -> None:
    """Speech, music and a gunshot in chunks of 1-40000 samples, with the VAD windows arriving a
    little after their audio, give the one-shot profile; push returns each second once."""
    samples = np.concatenate([clips["jfk"][1], gunshot(clips["choice"][1][:6 * SR], 2.5)])
    vad = np.concatenate([probs["jfk"], probs["choice"][:6 * SR // 512 + 1]])[: -(-len(samples) // 512)]
    whole = profile(samples, SR, vad)
    tracker = SoundTracker(SR)
    edges = [0, *itertools.accumulate(np.random.default_rng(4).integers(1, 40000, size=400))]
    pushed: list[str] = []
    sent = 0
    for start, end in itertools.pairwise(edges):
        if start >= len(samples):
            break
        ready = min(len(vad), max(sent, (end - 700) // 512))  # windows arrive 700 samples late
        pushed += tracker.push(samples[start:end], vad[sent:ready])
        sent = ready
    pushed += tracker.push(np.zeros(0, np.float32), vad[sent:])
    streamed = tracker.finish()
    assert streamed.seconds == whole.seconds and tuple(pushed) == whole.seconds[: len(pushed)]
    assert streamed.events == whole.events and len(whole.events) >= 1
    assert streamed.shares == whole.shares and streamed.peak_db == whole.peak_db
    assert streamed.features == pytest.approx(whole.features, rel=1e-6)
    assert streamed.mfcc_mean == pytest.approx(whole.mfcc_mean, abs=1e-3)


def test_state_stays_bounded_over_long_streams() -> None:
    """After 20 minutes of audio the tracker's state is the 1-byte-per-second labels plus a
    constant: 1000 more seconds grow it by about 1 kB, not by the 64 kB/s of samples."""
    rng = np.random.default_rng(5)
    chunk = at_db(pink(SR, rng), -25)
    tracker = SoundTracker(SR)
    sizes = []
    for i in range(1200):
        tracker.push(chunk, np.full(31 + (i % 4 == 0), 0.1, np.float32))
        if i in (199, 1199):
            sizes.append(len(pickle.dumps(tracker)))
    assert sizes[1] - sizes[0] < 1000 + 1000
    assert len(tracker.finish().seconds) == 1200


def test_empty_nan_and_partial_seconds() -> None:
    """Empty audio has no seconds; NaN/inf samples do not crash and read as quiet; a trailing
    0.6 s is a second, a trailing 0.4 s is not."""
    empty = profile(np.zeros(0, np.float32), SR)
    assert empty.seconds == () and empty.events == () and set(empty.shares.values()) == {0.0}
    assert SoundTracker(SR).finish() == empty
    broken = np.full(2 * SR, np.nan, np.float32)
    broken[::7] = np.inf
    assert len(profile(broken, SR).seconds) == 2
    assert profile(np.full(SR, np.nan, np.float32), SR).seconds == ("silence",)
    noise = at_db(np.random.default_rng(6).standard_normal(3 * SR), -20)
    assert len(profile(noise[: int(1.6 * SR)], SR).seconds) == 2
    assert len(profile(noise[: int(1.4 * SR)], SR).seconds) == 1


def test_other_rates_and_integer_stereo(clips: dict[str, tuple[str, np.ndarray]]) -> None:
    """8 and 44.1 kHz input is read natively with the same seconds; int16 stereo is scaled and mixed."""
    from bench.sounds import LIBROSA, MUSIC, load

    wide = profile(load(LIBROSA / MUSIC["vibeace"], 44100), 44100)
    assert len(wide.seconds) == len(profile(clips["vibeace"][1], SR).seconds)
    assert wide.shares["music"] >= 0.9
    narrow = profile(load(LIBROSA / MUSIC["vibeace"], 8000), 8000)
    assert narrow.shares["music"] >= 0.8
    assert profile(at_db(np.random.default_rng(7).standard_normal(3 * 8000), -20), 8000).seconds == ("other",) * 3
    mono = clips["jfk"][1][: 3 * SR]
    stereo = (np.stack([mono, mono], axis=1) * 32767).astype(np.int16)
    assert profile(stereo, SR).seconds == profile(mono, SR).seconds


def test_classes_and_summary_fields(clips: dict[str, tuple[str, np.ndarray]]) -> None:
    """Every second is one of the four classes; shares sum to 1; music has a tempo, speech none."""
    music = profile(clips["vibeace"][1], SR)
    assert set(music.seconds) <= set(CLASSES) and sum(music.shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert 60 <= music.features["tempo_bpm"] <= 200 and len(music.mfcc_mean) == 13
    assert -25 <= music.loudness_db <= -15 and music.peak_db <= 0
    speech = profile(clips["libri"][1], SR)
    assert speech.features["tempo_bpm"] == 0.0 and speech.features["onset_rate"] > 1


def test_seconds_wait_for_their_vad_windows(clips: dict[str, tuple[str, np.ndarray]],
                                            probs: dict[str, np.ndarray]) -> None:
    """Once VAD is in use, a second is held until the windows centred in it arrive, then given
    with them; a stream whose VAD stops is classified without it after MAX_WAITING seconds."""
    from udfs.sounds import MAX_WAITING

    speech, vad = clips["jfk"][1][: 3 * SR], probs["jfk"]
    tracker = SoundTracker(SR)
    assert tracker.push(speech, vad[:0]) == ()
    # Second 0 needs windows 0-30 (centres < 1 s), second 2 needs windows up to 93.
    assert tracker.push(np.zeros(0, np.float32), vad[:40]) == profile(speech, SR, vad[:94]).seconds[:1]
    assert len(tracker.push(np.zeros(0, np.float32), vad[40:93])) == 1
    assert len(tracker.push(np.zeros(0, np.float32), vad[93:94])) == 1
    stalled = SoundTracker(SR)
    stalled.push(np.zeros(0, np.float32), vad[:0])
    given = stalled.push(np.tile(speech, 5))
    assert len(given) == 15 - MAX_WAITING and len(stalled.finish().seconds) == 15
