"""Silero VAD on the shared clips: speech is found where JFK speaks and not in a trumpet, silence
or noise; a batch of streams gives the numbers of one stream at a time; chunked streaming gives
the one-shot result; 8 kHz and other rates work; a missing model is a named ModelError."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest

from schemas.errors import MediaError, ModelError
from trackius.settings import REPO_ROOT, SHARED_DATA
from udfs.models import read_manifest
from udfs.vad import Hysteresis, VadResult, VoiceActivity

MODELS = SHARED_DATA / "models"
JFK = SHARED_DATA / "audio" / "speech" / "jfk.flac"
TRUMPET = SHARED_DATA / "audio" / "librosa" / "sorohanro_-_solo-trumpet-06.ogg"
SPEC = read_manifest(REPO_ROOT / "models" / "audio" / "manifest.json")["vad"]


def load(path: Path, sr: int = 16000) -> np.ndarray:
    return librosa.load(path, sr=sr, mono=True)[0]


@pytest.fixture(scope="module")
def vad() -> VoiceActivity:
    return VoiceActivity(MODELS, SPEC)


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return load(JFK)


def noise(seconds: float, level: float, seed: int = 7) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * level).astype(np.float32)


def test_jfk_is_mostly_speech_with_segments_over_the_words(vad: VoiceActivity, jfk: np.ndarray) -> None:
    """JFK's 11 s clip is 0.57-0.89 speech (SOURCES.md) and the segments span his words."""
    result = vad.speech([jfk])[0]
    assert 0.57 <= result.speech_share <= 0.89
    assert result.frames == -(-len(jfk) // 512)
    starts, ends = zip(*result.segments)
    assert starts[0] < 1.0 and ends[-1] > 10.0  # "And so my fellow Americans ... your country"
    assert list(starts) == sorted(starts) and all(s < e for s, e in result.segments)
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(result.segments, result.segments[1:]))


def test_trumpet_silence_and_noise_are_not_speech(vad: VoiceActivity) -> None:
    """A solo trumpet, digital silence and white noise hold no speech."""
    trumpet, silence, hiss = vad.speech([load(TRUMPET), np.zeros(3 * 16000, np.float32), noise(3, 0.1)])
    assert trumpet.speech_share < 0.02
    assert silence.speech_share == 0.0 and silence.segments == ()
    assert hiss.speech_share < 0.1


def test_batch_equals_one_stream_at_a_time(vad: VoiceActivity, jfk: np.ndarray) -> None:
    """Streams of different lengths batched together give each stream's own probabilities."""
    streams = [jfk, load(TRUMPET), jfk[16000:60000], noise(1.3, 0.05), jfk[:100]]
    batched = vad.probabilities(streams, 16000)
    for stream, probs in zip(streams, batched):
        alone = vad.probabilities([stream], 16000)[0]
        assert probs.shape == alone.shape == (-(-len(stream) // 512),)
        np.testing.assert_allclose(probs, alone, atol=1e-5)
    assert vad.speech(streams) == [vad.speech([stream])[0] for stream in streams]


def test_streaming_in_odd_chunks_equals_one_shot(vad: VoiceActivity, jfk: np.ndarray) -> None:
    """Chunks of uneven sizes (smaller and larger than a window) give the one-shot result."""
    stream = vad.stream(16000)
    sizes = np.random.default_rng(1).integers(1, 3000, size=len(jfk) // 100)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    pieces = [stream.push(jfk[a:b]) for a, b in itertools.pairwise(edges) if a < len(jfk)]
    stream.push(jfk[min(edges[-1], len(jfk)):])
    result = stream.finish()
    assert result == vad.speech([jfk])[0]
    streamed = np.concatenate(pieces)
    np.testing.assert_allclose(streamed, vad.probabilities([jfk], 16000)[0][:len(streamed)], atol=1e-5)


def test_eight_khz_and_resampled_rates(vad: VoiceActivity) -> None:
    """8 kHz runs the 32+256 contract natively; 22.05 kHz is resampled; both still find JFK."""
    narrow = load(JFK, sr=8000)
    result = vad.speech([narrow], sr=8000)[0]
    assert result.frames == -(-len(narrow) // 256)
    assert 0.5 <= result.speech_share <= 0.95
    assert vad.stream(8000).push(narrow[:2560]).shape == (10,)
    wide = vad.speech([load(JFK, sr=22050)], sr=22050)[0]
    assert 0.57 <= wide.speech_share <= 0.89
    with pytest.raises(MediaError):
        vad.stream(22050)


def test_empty_input(vad: VoiceActivity) -> None:
    """Empty audio, alone or beside real audio, is no speech and no windows."""
    empty = VadResult(speech_share=0.0, segments=(), frames=0)
    assert vad.speech([np.zeros(0, np.float32)]) == [empty]
    assert vad.speech([]) == []
    assert vad.speech([np.zeros(0, np.float32), noise(0.5, 0.01)])[0] == empty
    assert vad.stream().finish() == empty


def test_hysteresis_durations_and_padding() -> None:
    """Short dips stay inside speech, short blips are dropped, padding widens and merges."""
    rule = Hysteresis(threshold=0.5, min_speech_ms=250, min_silence_ms=100, pad_ms=30)
    window = 512 / 16000  # 32 ms
    probs = np.array([0.0] * 10 + [0.9] * 20 + [0.1] * 2 + [0.9] * 20 + [0.0] * 10 + [0.9] * 3 + [0.0] * 10)
    result = rule.result(probs, len(probs) * 512, 16000)
    assert len(result.segments) == 1  # the 64 ms dip is shorter than min_silence; the 96 ms blip is dropped
    start, end = result.segments[0]
    assert start == pytest.approx(10 * window - 0.03) and end == pytest.approx(52 * window + 0.03)
    assert rule.result(np.array([0.45] * 40), 40 * 512, 16000).segments == ()  # never reaches threshold


def test_missing_or_altered_model_is_a_named_model_error(tmp_path: Path) -> None:
    """No model file, or a different one, raises ModelError naming the file."""
    with pytest.raises(ModelError, match="silero_vad.onnx"):
        VoiceActivity(tmp_path, SPEC)
    (tmp_path / "audio_vad").mkdir()
    shutil.copy(MODELS / "audio_vad" / "silero_vad_16k_op15.onnx", tmp_path / "audio_vad" / "silero_vad.onnx")
    with pytest.raises(ModelError, match="sha256"):
        VoiceActivity(tmp_path, SPEC)


def test_push_many_equals_separate_streams(vad: VoiceActivity, jfk: np.ndarray) -> None:
    """Streams of different lengths pushed together in batched steps give each stream's own numbers."""
    trumpet = load(TRUMPET)[: 16000 * 7]
    together = [vad.stream(), vad.stream()]
    alone = [vad.stream(), vad.stream()]
    for start in range(0, len(jfk), 40000):
        pieces = [jfk[start:start + 40000], trumpet[start:start + 40000]]
        batched = vad.push_many(together, pieces)
        for stream, piece, got in zip(alone, pieces, batched):
            np.testing.assert_allclose(got, stream.push(piece), atol=1e-5)
    assert [t.finish() for t in together] == [a.finish() for a in alone]
