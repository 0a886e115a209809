"""Tests of udfs/audio_distort.py: seeded noise, lossy re-encoding, speed changes and excerpts."""

from __future__ import annotations

import numpy as np
import pytest

from udfs.audio_distort import KINDS, add_noise, change_speed, distort, excerpt, reencode

SR = 16000


def _tone(freq: float = 1000.0, seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2)))


def _peak_hz(samples: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * sr / samples.size)


@pytest.mark.parametrize("kind", ["white", "babble"])
def test_noise_has_the_requested_snr_and_follows_the_seed(kind: str) -> None:
    """White and babble noise land at exactly 10 dB; a seed repeats the noise, another changes it."""
    voices = [np.random.default_rng(9).normal(0, 0.1, SR).astype(np.float32), _tone(300.0, 0.5)]
    first = add_noise(_tone(), SR, 10.0, kind, np.random.default_rng(1), voices)
    again = add_noise(_tone(), SR, 10.0, kind, np.random.default_rng(1), voices)
    other = add_noise(_tone(), SR, 10.0, kind, np.random.default_rng(2), voices)
    assert _snr_db(_tone(), first) == pytest.approx(10.0, abs=0.01)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.dtype == np.float32


def test_babble_needs_a_voice_and_unknown_kinds_fail() -> None:
    """Babble without (non-silent) sources and an unknown noise kind raise ValueError."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="source"):
        add_noise(_tone(), SR, 10.0, "babble", rng, [np.zeros(100, np.float32)])
    with pytest.raises(ValueError, match="kind"):
        add_noise(_tone(), SR, 10.0, "pink", rng)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
@pytest.mark.parametrize("sr", [16000, 22050, 17000])
def test_reencode_is_lossy_but_keeps_length_rate_and_content(fmt: str, sr: int) -> None:
    """A lossy round trip returns as many samples at the same rate, close to but not the input
    (17 kHz has no MP3 rate: it goes through the next one up and back)."""
    tone = _tone(440.0, 2.0, sr) + _tone(1700.0, 2.0, sr) * 0.3
    out = reencode(tone, sr, fmt)
    assert out.shape == tone.shape and out.dtype == np.float32
    middle = slice(sr // 4, -sr // 4)
    assert np.corrcoef(tone[middle], out[middle])[0, 1] > 0.95
    assert not np.allclose(tone, out, atol=1e-4)


def test_change_speed_scales_pitch_and_duration() -> None:
    """5 % faster: 5 % shorter and a 1 kHz tone moves to 1.05 kHz; a factor of 0 is refused."""
    faster = change_speed(_tone(), SR, 1.05)
    assert faster.size == pytest.approx(2 * SR / 1.05, abs=2)
    assert _peak_hz(faster) == pytest.approx(1050.0, abs=2.0)
    assert _peak_hz(change_speed(_tone(), SR, 0.95)) == pytest.approx(950.0, abs=2.0)
    with pytest.raises(ValueError):
        change_speed(_tone(), SR, 0.0)


def test_excerpt_is_seeded_and_inside_the_audio() -> None:
    """An excerpt has the asked length, starts where it says, repeats per seed; short audio
    comes back whole from 0."""
    audio = np.arange(10 * SR, dtype=np.float32)
    clip, start = excerpt(audio, SR, 2.0, np.random.default_rng(4))
    assert clip.size == 2 * SR and clip[0] == start * SR and 0 <= start <= 8
    assert excerpt(audio, SR, 2.0, np.random.default_rng(4))[1] == start
    short, at = excerpt(audio[:SR], SR, 2.0, np.random.default_rng(4))
    assert short.size == SR and at == 0.0


def test_every_kind_gives_finite_audio_and_unknown_kinds_fail() -> None:
    """Each named distortion (and "original") returns finite float32 audio of about the same
    length; a misspelt kind raises."""
    rng = np.random.default_rng(3)
    voices = [np.random.default_rng(5).normal(0, 0.1, SR).astype(np.float32)]
    for kind in ("original", *KINDS):
        out = distort(_tone(), SR, kind, rng, voices)
        assert out.dtype == np.float32 and np.all(np.isfinite(out)), kind
        assert abs(out.size - 2 * SR) <= 0.06 * 2 * SR, kind
    with pytest.raises(ValueError):
        distort(_tone(), SR, "speed", rng, voices)
