"""Speech to text for the speech segments that voice activity detection finds (udfs/vad.py).

The audio pipeline hands over 16 kHz mono float32 samples with the segment's start in the media's
clock (`offset_s`); every time in a `Transcript` is in that clock, so a word's time points into
the media. Transcripts go to the text analysis like any other text, so text rules fire on what
was said.

Engines sit behind `SpeechEngine` and are built by `create_engine`:

- "pocketsphinx" (default): CMU PocketSphinx 5 with the US English model that ships in its wheel.
  `transcribe` decodes a whole segment (batch cepstral mean normalisation); `stream` gives partial
  text chunk by chunk and its final transcript by a whole-segment pass at the end (so it equals
  `transcribe`'s); `spot` runs a separate keyword-spotting decoder. Default decoder
  settings are kept: on jfk.flac a different language weight or wider beams did not lower the word
  error rate (bench/stt.py).
- "onnx": a CTC acoustic model (wav2vec2 style) described by a manifest; see udfs/speech_onnx.py.

An engine holds decoders with state: use one engine from one thread at a time (one per operator
instance), and one stream at a time per engine, since a stream borrows the engine's decoder.
Building a decoder costs ~0.4 s, so engines are built once (in `open()`) and reused.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from schemas.errors import ConfigError, ModelError
from udfs.audio import pcm16

RATE = 16000
FRAMES_PER_S = 100  # PocketSphinx's default frame rate (-frate)
# A filler (<s>, </s>, <sil>, [NOISE], ++NOISE++) is not a word of the transcript.
_FILLER = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
# Below this RMS (in 16-bit steps: -80 dBFS) a segment is digital silence. PocketSphinx heard
# words in all-zero audio ("i'm") and in zeros with one-step ticks ("it").
SILENT_RMS = 3.3
_ALTERNATE = re.compile(r"\(\d+\)$")  # "and(2)": the dictionary's second pronunciation


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float  # in the media's clock
    end_s: float
    confidence: float  # 0..1


@dataclass(frozen=True)
class KeywordHit:
    phrase: str
    start_s: float
    end_s: float
    score: float  # 0..1, higher is surer


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    keywords: tuple[KeywordHit, ...] = ()
    engine: str = ""


class SpeechStream(Protocol):
    def push(self, chunk: np.ndarray) -> str: ...  # the partial text so far

    def finish(self) -> Transcript: ...


class SpeechEngine(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray, sr: int = RATE, offset_s: float = 0.0) -> Transcript: ...

    def stream(self, sr: int = RATE, offset_s: float = 0.0) -> SpeechStream: ...

    def spot(self, samples: np.ndarray, phrases: Sequence[str], sr: int = RATE,
             offset_s: float = 0.0) -> tuple[KeywordHit, ...]: ...

    def unknown_words(self, phrase: str) -> list[str]: ...


def create_engine(kind: str = "pocketsphinx", model_dir: Path | None = None) -> SpeechEngine:
    """The engine of that kind; "onnx" reads `model_dir` (holding manifest.json), "pocketsphinx"
    uses the model in its wheel and ignores it."""
    if kind == "pocketsphinx":
        return PocketSphinxEngine()
    if kind == "onnx":
        from udfs.speech_onnx import OnnxCtcEngine

        if model_dir is None:
            raise ConfigError("speech engine 'onnx' needs a model directory holding manifest.json")
        return OnnxCtcEngine.from_dir(model_dir)
    raise ConfigError(f"unknown speech engine {kind!r}; expected 'pocketsphinx' or 'onnx'")


def to_rate(samples: np.ndarray, sr: int, rate: int = RATE) -> np.ndarray:
    """Mono float32 at `rate` (soxr's high-quality resampler where the rate differs)."""
    mono = np.asarray(samples, dtype=np.float32)
    if mono.ndim == 2:  # (frames, channels), as soundfile reads it
        mono = mono.mean(axis=1)
    if sr == rate or mono.size == 0:
        return mono
    import soxr

    return soxr.resample(mono, sr, rate).astype(np.float32, copy=False)


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept: "don't" is one dictionary word)."""
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after `words_of`."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    if not ref:
        return float(bool(hyp))
    row = list(range(len(hyp) + 1))
    for i, expected in enumerate(ref, 1):
        previous, row[0] = row[:], i
        for j, heard in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (expected != heard))
    return row[-1] / len(ref)


def kws_threshold(phones: int) -> float:
    """The keyword-spotting threshold for a phrase of that many phones: 1e-(5n-10), kept
    between 1e-1 and 1e-40.

    Measured (`python -m bench.stt --kws-sweep`) on jfk.flac with its 60 word pairs and triples
    and 28 unrelated phrases, and on the wake-word clips: the exponent at which a phrase first
    fires grows with its length, for true and false phrases alike. At this rule "ask not" (first
    fires at 1e-13, rule 1e-20), "your country" (1e-29, 1e-35), "fellow americans" (1e-9, 1e-40),
    "alexa" in its clip (1e-18, 1e-20) and "hey jane" in its clip (1e-0, 1e-15) are found, and no
    unrelated phrase of 7 or more phones fires in jfk.flac (the nearest, "click here", fires at
    1e-27 against its 1e-25). Short phrases stay ambiguous: "thank you" and "new york" (6 phones)
    do fire in jfk.flac, and "alexa" fires on "...lights off" in hey_jane.wav even at 1e-1.
    """
    exponent = min(max(5 * phones - 10, 1), 40)
    return float(f"1e-{exponent}")


class PocketSphinxEngine:
    """PocketSphinx 5 with its bundled en-us model; `options` go to `pocketsphinx.Decoder`.

    `live_partials=False` makes streams skip the live pass (push then returns ""): it costs
    about as much as the final pass, and its text is poor for the first seconds of a stream.
    """

    name = "pocketsphinx"

    def __init__(self, live_partials: bool = True, **options: Any) -> None:
        self._live_partials = live_partials
        self._options = {"loglevel": "FATAL", **options}
        self._decoder = _decoder(self._options)
        self._prior = self._decoder.get_cmn()  # the model's initial cepstral mean
        self._live: Any = None  # the streams' first-pass decoder, built on first use
        self._spotter: Any = None
        self._searches: dict[tuple[str, ...], str] = {}

    def transcribe(self, samples: np.ndarray, sr: int = RATE, offset_s: float = 0.0) -> Transcript:
        if not _decode(self._decoder, pcm16(to_rate(samples, sr)), self._prior):
            return Transcript(text="", words=(), engine=self.name)
        return _transcript(self._decoder, offset_s)

    def stream(self, sr: int = RATE, offset_s: float = 0.0) -> PocketSphinxStream:
        if self._live is None and self._live_partials:
            # Its own decoder: once a decoder has run a live (chunked) utterance, its later
            # whole-utterance passes came out different (jfk.flac: 23 % -> 95 % word errors).
            # Its last passes are wasted work: the final pass replaces its result.
            self._live = _decoder({**self._options, "fwdflat": False, "bestpath": False})
        return PocketSphinxStream(self._live, self._decoder, sr, offset_s, self._prior)

    def spot(self, samples: np.ndarray, phrases: Sequence[str], sr: int = RATE,
             offset_s: float = 0.0) -> tuple[KeywordHit, ...]:
        """Where the known phrases occur; a phrase with words outside the dictionary is skipped."""
        known = tuple(sorted({" ".join(words_of(p)) for p in phrases if words_of(p) and not self.unknown_words(p)}))
        if not known:
            return ()
        spotter = self._spotter_for(known)
        if not _decode(spotter, pcm16(to_rate(samples, sr)), self._prior):
            return ()
        hits = [_hit(segment, offset_s) for segment in spotter.seg() or ()]
        return tuple(sorted(hits, key=lambda hit: (hit.start_s, hit.phrase)))

    def unknown_words(self, phrase: str) -> list[str]:
        return [word for word in words_of(phrase) if self._decoder.lookup_word(word) is None]

    def _spotter_for(self, phrases: tuple[str, ...]) -> Any:
        """One keyword decoder for the engine, one search per phrase set (added once, reused)."""
        if self._spotter is None:
            # A keyword-only decoder: without an LM it builds in ~0.1 s instead of ~0.4 s.
            self._spotter = _decoder({**self._options, "lm": None, "keyphrase": phrases[0]})
        if phrases not in self._searches:
            name = f"kws{len(self._searches)}"
            with tempfile.NamedTemporaryFile("w", suffix=".kws") as keyfile:
                keyfile.write("".join(f"{p} /{kws_threshold(self.phones(p)):.0e}/\n" for p in phrases))
                keyfile.flush()
                self._spotter.add_kws(name, keyfile.name)
            self._searches[phrases] = name
        self._spotter.activate_search(self._searches[phrases])
        return self._spotter

    def phones(self, phrase: str) -> int:
        """The phones of a phrase of known words (the dictionary's first pronunciations)."""
        return sum(len(self._decoder.lookup_word(word).split()) for word in phrase.split())


class PocketSphinxStream:
    """One utterance decoded as its chunks arrive, in two passes.

    The live pass gives the partial text. It normalises the cepstra with a running mean that
    starts, every stream, from the model's initial mean (so partials do not depend on earlier,
    unrelated media), which is far from real recordings: on jfk.flac its text got 91-100 % of the
    words wrong. The final transcript is therefore a second, whole-utterance pass over the kept
    audio (32 kB a second), identical to `transcribe`'s for 16 kHz input; chunks at another rate
    are resampled as a stream (soxr keeps its filter state across chunks), which can differ from
    one-shot resampling in the last bits.
    """

    def __init__(self, live: Any | None, decoder: Any, sr: int, offset_s: float, cepstral_mean: str) -> None:
        import soxr

        self._live = live
        self._decoder = decoder
        self._prior = cepstral_mean
        self._offset_s = offset_s
        self._resampler = None if sr == RATE else soxr.ResampleStream(sr, RATE, 1, dtype="float32")
        self._audio: list[bytes] = []
        if live is not None:
            _reset(live, cepstral_mean)
            live.start_utt()

    def push(self, chunk: np.ndarray) -> str:
        audio = to_rate(chunk, RATE)  # mono float32 only; the rate is handled below
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio)
        self._feed(audio)
        hypothesis = self._live.hyp() if self._live is not None else None
        return hypothesis.hypstr if hypothesis is not None else ""

    def finish(self) -> Transcript:
        if self._resampler is not None:
            self._feed(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        if self._live is not None:
            self._live.end_utt()
        if not _decode(self._decoder, b"".join(self._audio), self._prior):
            return Transcript(text="", words=(), engine=PocketSphinxEngine.name)
        return _transcript(self._decoder, self._offset_s)

    def _feed(self, audio: np.ndarray) -> None:
        if audio.size:
            data = pcm16(audio)
            self._audio.append(data)
            if self._live is not None:
                self._live.process_raw(data)


def _decoder(options: dict[str, Any]) -> Any:
    from pocketsphinx import Decoder

    try:
        return Decoder(**options)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"pocketsphinx cannot build a decoder with {options}: {exc}") from exc


def _reset(decoder: Any, cepstral_mean: str) -> None:
    """Forget what earlier utterances left behind (noise statistics, the running cepstral mean):
    without this the same segment decoded twice gave different words (jfk.flac: 23 % and 45 %
    word error rate), since one engine serves unrelated media one after the other."""
    with warnings.catch_warnings():
        # Deprecated as "unnecessary" in 5.0, yet it is what resets the noise statistics.
        warnings.simplefilter("ignore", DeprecationWarning)
        decoder.start_stream()
    decoder.set_cmn(cepstral_mean)


def _decode(decoder: Any, audio: bytes, cepstral_mean: str) -> bool:
    """Decode one whole utterance; False, without decoding, where it is digital silence."""
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float32)
    if samples.size == 0 or np.sqrt(np.mean(samples**2)) < SILENT_RMS:
        return False
    _reset(decoder, cepstral_mean)
    decoder.start_utt()
    decoder.process_raw(audio, full_utt=True)
    decoder.end_utt()
    return True


def _transcript(decoder: Any, offset_s: float) -> Transcript:
    words = tuple(
        Word(text=_ALTERNATE.sub("", segment.word), confidence=round(float(segment.prob), 4),
             start_s=_seconds(segment.start_frame, offset_s), end_s=_seconds(segment.end_frame + 1, offset_s))
        for segment in decoder.seg() or () if not _FILLER.match(segment.word)
    )
    return Transcript(text=" ".join(word.text for word in words), words=words, engine=PocketSphinxEngine.name)


def _hit(segment: Any, offset_s: float) -> KeywordHit:
    # In keyword mode the segment's prob is the detection's posterior-like score (higher at
    # stricter thresholds: ~0.92 for hits at 1e-1, ~0.78 at 1e-50).
    return KeywordHit(phrase=segment.word.strip(), score=round(float(segment.prob), 4),
                      start_s=_seconds(segment.start_frame, offset_s),
                      end_s=_seconds(segment.end_frame + 1, offset_s))


def _seconds(frame: int, offset_s: float) -> float:
    return round(offset_s + frame / FRAMES_PER_S, 3)
