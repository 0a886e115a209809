"""Speech to text: PocketSphinx transcribes JFK with a bounded word error rate, streams to the
same words, times words in the media's clock, spots tracked phrases and not unrelated ones, and
takes 8 and 44.1 kHz; the ONNX CTC engine decodes a generated model; bad manifests are named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from onnx import TensorProto, helper

from schemas.errors import ConfigError, ModelError
from trackius.settings import SHARED_DATA
from udfs.speech import PocketSphinxEngine, Transcript, create_engine, to_rate, word_error_rate
from udfs.speech_onnx import OnnxCtcEngine

JFK = SHARED_DATA / "audio" / "speech" / "jfk.flac"
WAKEWORDS = SHARED_DATA / "audio" / "wakeword"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")
# Measured 0.227 (5 of 22 words: so, Americans, ask twice, the last "country"); the bound
# leaves room for another pocketsphinx build without letting a broken pipeline through.
MAX_WER = 0.35
RATE = 16000
CLIP_S = 4.5


@pytest.fixture(scope="module")
def engine() -> PocketSphinxEngine:
    return PocketSphinxEngine()


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    samples, sr = sf.read(JFK, dtype="float32")
    return to_rate(samples, sr)


@pytest.fixture(scope="module")
def jfk_text(engine: PocketSphinxEngine, jfk: np.ndarray) -> Transcript:
    return engine.transcribe(jfk)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """JFK's first 4.5 s ("and so my fellow americans, ask not"), kept short for speed."""
    return to_rate(sf.read(JFK, dtype="float32", frames=int(CLIP_S * 44100))[0], 44100)


@pytest.fixture(scope="module")
def clip_text(engine: PocketSphinxEngine, clip: np.ndarray) -> Transcript:
    return engine.transcribe(clip)


def test_jfk_transcript_has_the_phrase_and_a_bounded_word_error_rate(jfk_text: Transcript) -> None:
    """The transcript says "your country" and misses at most MAX_WER of the words."""
    assert "your country" in jfk_text.text
    assert word_error_rate(JFK_TEXT, jfk_text.text) <= MAX_WER
    assert jfk_text.engine == "pocketsphinx"
    assert not any(w.text.startswith(("<", "[")) or "(" in w.text for w in jfk_text.words)


def test_streaming_in_half_second_chunks_gives_the_one_shot_words(
        engine: PocketSphinxEngine, clip: np.ndarray, clip_text: Transcript) -> None:
    """A stream's final transcript equals transcribe's (its second pass is the same decoding);
    the live pass gives partial text before the end."""
    stream = engine.stream()
    partials = [stream.push(clip[i:i + RATE // 2]) for i in range(0, clip.size, RATE // 2)]
    assert stream.finish() == clip_text
    assert any(partials[:-1])


def test_a_stream_without_partials_gives_the_same_words(clip: np.ndarray, clip_text: Transcript) -> None:
    """With live_partials off, pushes return "" and the final transcript is unchanged."""
    stream = PocketSphinxEngine(live_partials=False).stream()
    assert [stream.push(clip[i:i + RATE]) for i in range(0, clip.size, RATE)] == [""] * 5
    assert stream.finish() == clip_text


def test_the_same_segment_decodes_the_same_after_other_audio(
        engine: PocketSphinxEngine, clip: np.ndarray, clip_text: Transcript) -> None:
    """Noise statistics and cepstral means of earlier audio do not leak into the next segment."""
    engine.transcribe(clip[: 2 * RATE][::-1].copy())
    assert engine.transcribe(clip) == clip_text


def test_word_times_lie_inside_the_audio_and_follow_the_offset(
        engine: PocketSphinxEngine, clip: np.ndarray, clip_text: Transcript) -> None:
    """Times are ordered, inside the clip, and shifted by offset_s."""
    plain, shifted = clip_text, engine.transcribe(clip, offset_s=100.0)
    assert plain.words and all(0 <= w.start_s < w.end_s <= CLIP_S for w in plain.words)
    assert all(a.end_s <= b.start_s for a, b in zip(plain.words, plain.words[1:]))
    assert all(0 <= w.confidence <= 1 for w in plain.words)
    assert [(w.text, round(w.start_s + 100, 3)) for w in plain.words] == [(w.text, w.start_s) for w in shifted.words]


def test_spotting_finds_tracked_phrases_and_not_unrelated_ones(engine: PocketSphinxEngine, jfk: np.ndarray) -> None:
    """"ask not" is found where it is said; unrelated and unknown-word phrases are not."""
    hits = engine.spot(jfk, ["Ask not!", "fellow americans", "stock market crash", "hey jane", "hey mycroft"],
                       offset_s=2.0)
    assert {hit.phrase for hit in hits} == {"ask not", "fellow americans"}
    ask_not = next(hit for hit in hits if hit.phrase == "ask not")
    assert 5.0 < ask_not.start_s < ask_not.end_s < 6.6  # said at ~3.3-4.3 s of the clip
    assert 0 < ask_not.score <= 1


@pytest.mark.parametrize(("clip", "phrase"), [("hey_jane.wav", "hey jane"), ("alexa_test.wav", "alexa")])
def test_spotting_finds_wake_words_in_their_clips(engine: PocketSphinxEngine, clip: str, phrase: str) -> None:
    """Each wake-word clip fires its own phrase."""
    samples, sr = sf.read(WAKEWORDS / clip, dtype="float32")
    assert phrase in {hit.phrase for hit in engine.spot(samples, ["hey jane", "alexa"], sr=sr)}


def test_unknown_words_are_those_outside_the_dictionary(engine: PocketSphinxEngine) -> None:
    """A phrase's words missing from the dictionary are named; known words are not."""
    assert engine.unknown_words("Hey Mycroft!") == ["mycroft"]
    assert engine.unknown_words("your country") == []


def test_silence_gives_an_empty_transcript(engine: PocketSphinxEngine) -> None:
    """Digital silence, faint noise and an empty segment give no words and no hits."""
    faint = (np.random.default_rng(0).standard_normal(2 * RATE) * 1e-3).astype(np.float32)  # -60 dBFS
    for samples in (np.zeros(2 * RATE, dtype=np.float32), faint, np.zeros(0, dtype=np.float32)):
        assert engine.transcribe(samples) == Transcript(text="", words=(), engine="pocketsphinx")
        assert engine.spot(samples, ["ask not"]) == ()
    stream = engine.stream()
    stream.push(np.zeros(RATE, dtype=np.float32))
    assert stream.finish().words == ()


def test_other_rates_are_resampled(engine: PocketSphinxEngine, clip_text: Transcript) -> None:
    """44.1 kHz stereo gives the 16 kHz words; 8 kHz gives words timed in the same clock."""
    samples, sr = sf.read(JFK, dtype="float32", frames=int(CLIP_S * 44100))
    assert engine.transcribe(samples, sr=sr) == clip_text
    assert "fellow" in clip_text.text.split()
    # Telephone-band audio loses what the wide-band model listens for: the words differ.
    narrow = engine.transcribe(to_rate(samples[: 2 * sr], sr, 8000), sr=8000)
    assert narrow.words and narrow.words[0].start_s < 1.0 and narrow.words[-1].end_s <= 2.0


def test_word_error_rate_counts_edits_per_reference_word() -> None:
    """Case and punctuation are ignored; one substitution in four words is 0.25."""
    assert word_error_rate("Ask not, what!", "ask not what") == 0.0
    assert word_error_rate("a b c d", "a x c d") == 0.25
    assert word_error_rate("a b", "") == 1.0


def test_unknown_engine_kind_is_a_config_error() -> None:
    """A misspelt engine kind is refused with the accepted kinds named."""
    with pytest.raises(ConfigError, match="pocketsphinx"):
        create_engine("whisper")


# --- The ONNX CTC engine, on a generated model -------------------------------------------------

TOKENS = ["<pad>", "|", "H", "I", "T", "O", "N"]
STRIDE = 320  # samples per frame: 20 ms at 16 kHz


def toy_model() -> bytes:
    """Logits = -(frame mean - k/10)^2 for token k: a frame of constant level k/10 says token k."""
    centers = helper.make_tensor("centers", TensorProto.FLOAT, [len(TOKENS)], [k / 10 for k in range(len(TOKENS))])
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, -1, STRIDE])
    nodes = [helper.make_node("Reshape", ["waveform", "shape"], ["frames"]),
             helper.make_node("ReduceMean", ["frames"], ["level"], axes=[2], keepdims=1),
             helper.make_node("Sub", ["level", "centers"], ["distance"]),
             helper.make_node("Mul", ["distance", "distance"], ["squared"]),
             helper.make_node("Neg", ["squared"], ["logits"])]
    graph = helper.make_graph(
        nodes, "toy_ctc", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "frames", len(TOKENS)])],
        initializer=[centers, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def spoken(tokens: str) -> np.ndarray:
    """The waveform whose frames say these tokens, one character a frame ("_" is the blank)."""
    levels = [TOKENS.index("<pad>" if c == "_" else c) / 10 for c in tokens]
    return np.repeat(np.asarray(levels, dtype=np.float32), STRIDE)


def write_model(directory: Path, **changes: object) -> Path:
    (directory / "toy.onnx").write_bytes(toy_model())
    manifest = {"file": "toy.onnx", "input": "waveform", "sample_rate": RATE, "frame_stride": STRIDE,
                "tokens": TOKENS, "blank_id": 0, "word_separator": "|", **changes}
    (directory / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if v is not None}))
    return directory


def test_onnx_engine_decodes_a_generated_ctc_model(tmp_path: Path) -> None:
    """Repeats collapse, blanks split doubled letters, "|" ends words, frames time the words."""
    engine = create_engine("onnx", write_model(tmp_path))
    assert isinstance(engine, OnnxCtcEngine)
    audio = spoken("HHI_||TO_ONN_")
    transcript = engine.transcribe(audio, offset_s=1.0)
    assert transcript.text == "hi toon"
    assert [(w.text, w.start_s, w.end_s) for w in transcript.words] == [("hi", 1.0, 1.06), ("toon", 1.12, 1.24)]
    assert all(0 < w.confidence <= 1 for w in transcript.words)
    stream = engine.stream(offset_s=1.0)
    for i in range(0, audio.size, 1000):
        stream.push(audio[i:i + 1000])
    assert stream.finish() == transcript
    assert [(h.phrase, h.start_s) for h in engine.spot(audio, ["Toon", "hint"], offset_s=1.0)] == [("toon", 1.12)]
    assert engine.unknown_words("hot zebra") == ["zebra"]


def test_onnx_engine_takes_tokens_from_a_file(tmp_path: Path) -> None:
    """A tokens_file (one token a line) stands in for an inline token list."""
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS) + "\n")
    engine = create_engine("onnx", write_model(tmp_path, tokens=None, tokens_file="vocab.txt"))
    assert engine.transcribe(spoken("TI_")).text == "ti"


@pytest.mark.parametrize(("changes", "message"), [
    ({"tokens": None}, "lacks the key 'tokens_file'"),
    ({"frame_stride": None}, "lacks the key 'frame_stride'"),
    ({"blank_id": 9}, "blank_id 9 is outside the 7 tokens"),
    ({"input": "input_values"}, "no input 'input_values'"),
    ({"file": "missing.onnx"}, "missing.onnx is missing"),
    ({"sha256": "0" * 64}, "the manifest expects 000000000000"),
])
def test_a_bad_manifest_is_a_named_model_error(tmp_path: Path, changes: dict, message: str) -> None:
    """Each unusable manifest raises ModelError saying what is wrong with it."""
    with pytest.raises(ModelError, match=message):
        create_engine("onnx", write_model(tmp_path, **changes))


def test_a_missing_model_directory_is_a_model_error(tmp_path: Path) -> None:
    """No manifest.json: the error names the path it looked at."""
    with pytest.raises(ModelError, match="manifest.json"):
        create_engine("onnx", tmp_path / "nowhere")
