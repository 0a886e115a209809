"""Tests of udfs/chroma.py: Chromaprint finds re-encoded copies of a reference at the right
offset, and nothing in audio that is not a reference."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from trackius.settings import SHARED_DATA
from udfs.audio import ANALYSIS_RATE, read_audio
from udfs.chroma import ChromaIndex, bit_error_rate, chroma_fingerprint

MUSIC = SHARED_DATA / "audio" / "librosa"
REFERENCES = ("Kevin_MacLeod_-_Vibe_Ace", "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)",
              "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy")
OTHERS = ("Karissa_Hobbs_-_Lets_Go_Fishin", "admiralbob77_-_Choice_-_Drum-bass", "198-209-0000")


@pytest.fixture(scope="module")
def audio() -> dict[str, np.ndarray]:
    return {stem: read_audio(MUSIC / f"{stem}.ogg") for stem in REFERENCES + OTHERS}


@pytest.fixture(scope="module")
def index(audio: dict[str, np.ndarray]) -> ChromaIndex:
    built = ChromaIndex()
    for stem in REFERENCES:
        built.add(stem, stem, chroma_fingerprint(audio[stem], ANALYSIS_RATE))
    return built


def mp3_round_trip(samples: np.ndarray, gain: float = 1.0) -> np.ndarray:
    out = io.BytesIO()
    soundfile.write(out, np.clip(samples * gain, -1, 1), ANALYSIS_RATE, format="MP3")
    return soundfile.read(io.BytesIO(out.getvalue()), dtype="float32")[0]


@pytest.mark.parametrize("stem", REFERENCES)
def test_a_reencoded_louder_excerpt_is_found_at_its_offset(stem: str, audio: dict[str, np.ndarray],
                                                           index: ChromaIndex) -> None:
    """20 s from 8 s in, MP3 round trip and +3 dB: the reference, ~8 s in, few differing bits."""
    excerpt = mp3_round_trip(audio[stem][8 * ANALYSIS_RATE:28 * ANALYSIS_RATE], gain=1.4)
    found = index.match(chroma_fingerprint(excerpt, ANALYSIS_RATE))
    assert found is not None and found.clip_id == stem
    assert abs(found.offset_s - 8.0) < 0.5
    assert found.bit_error_rate < 0.15


@pytest.mark.parametrize("stem", OTHERS)
def test_audio_that_is_no_reference_matches_nothing(stem: str, audio: dict[str, np.ndarray],
                                                    index: ChromaIndex) -> None:
    """Other music and speech: no reference is near enough."""
    assert index.match(chroma_fingerprint(audio[stem], ANALYSIS_RATE)) is None


def test_unrelated_fingerprints_differ_in_about_half_their_bits(audio: dict[str, np.ndarray]) -> None:
    """The margin the threshold rests on: unrelated recordings sit near 0.5, far above 0.25."""
    a = chroma_fingerprint(audio[REFERENCES[0]], ANALYSIS_RATE)
    b = chroma_fingerprint(audio[OTHERS[0]], ANALYSIS_RATE)
    n = min(len(a), len(b))
    assert 0.35 < bit_error_rate(a[:n], b[:n]) < 0.65


def test_removed_references_are_not_found(audio: dict[str, np.ndarray]) -> None:
    """After remove, the clip is gone from the index; short audio has no fingerprint to match."""
    index = ChromaIndex()
    words = chroma_fingerprint(audio[REFERENCES[0]], ANALYSIS_RATE)
    index.add("a", "a", words)
    assert index.match(words) is not None
    index.remove("a")
    assert index.match(words) is None and len(index) == 0
    assert index.match(chroma_fingerprint(np.zeros(ANALYSIS_RATE, np.float32), ANALYSIS_RATE)) is None
