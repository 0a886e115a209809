"""A CTC speech model in ONNX (wav2vec2 style) as a `SpeechEngine` (udfs/speech.py).

The model takes a float32 waveform [batch, samples] and gives logits [batch, frames, vocab]. Its
directory holds `manifest.json`:

    {"file": "model.onnx", "sha256": "…(optional, checked when given)",
     "input": "input_values", "output": "logits (optional: the first output)",
     "sample_rate": 16000, "frame_stride": 320,
     "tokens": ["<pad>", "|", "E", "T", …]  or  "tokens_file": "vocab.txt" (one token a line),
     "blank_id": 0, "word_separator": "|", "normalize": true}

`frame_stride` is samples per output frame (320 at 16 kHz: 20 ms). `normalize` scales each
segment to zero mean and unit variance, as wav2vec2's feature extractor does. Decoding is greedy:
the best token per frame, repeats collapsed, blanks dropped, the separator (or " ") ending a
word; a word spans its first to its last token's frames and its confidence is the mean of its
tokens' softmax probabilities. Tokens in angle brackets (<pad>, <s>, <unk>) are never text.

The model reads a whole segment at once, so a stream keeps its chunks and decodes at `finish`
(no partial text). Keyword spotting searches the transcript for the phrase's words.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import ModelError
from udfs.models import read_checked
from udfs.onnx import Session
from udfs.speech import KeywordHit, Transcript, Word, to_rate, words_of


@dataclass(frozen=True)
class CtcManifest:
    file: str
    input: str
    output: str | None
    sample_rate: int
    frame_stride: int
    tokens: tuple[str, ...]
    blank_id: int
    word_separator: str = "|"
    normalize: bool = False
    sha256: str | None = None


def read_ctc_manifest(model_dir: Path) -> CtcManifest:
    """The manifest, checked; a missing file or key raises ModelError naming it."""
    path = model_dir / "manifest.json"
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the speech model manifest {path}: {exc}") from exc
    if not isinstance(entry, dict):
        raise ModelError(f"speech model manifest {path} is not a JSON object")
    try:
        manifest = CtcManifest(
            file=str(entry["file"]), input=str(entry["input"]), output=entry.get("output"),
            sample_rate=int(entry["sample_rate"]), frame_stride=int(entry["frame_stride"]),
            tokens=_tokens(model_dir, entry), blank_id=int(entry["blank_id"]),
            word_separator=str(entry.get("word_separator", "|")), normalize=bool(entry.get("normalize", False)),
            sha256=entry.get("sha256"),
        )
    except KeyError as exc:
        raise ModelError(f"speech model manifest {path} lacks the key {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(f"speech model manifest {path} has a malformed value: {exc}") from exc
    _check(manifest, path)
    return manifest


def _tokens(model_dir: Path, entry: dict[str, Any]) -> tuple[str, ...]:
    if "tokens" in entry:
        return tuple(str(token) for token in entry["tokens"])
    lines = (model_dir / entry["tokens_file"]).read_text().splitlines()  # KeyError: no tokens at all
    return tuple(line.rstrip("\n") for line in lines if line)


def _check(manifest: CtcManifest, path: Path) -> None:
    if not 0 <= manifest.blank_id < len(manifest.tokens):
        raise ModelError(f"speech model manifest {path}: blank_id {manifest.blank_id} is outside "
                         f"the {len(manifest.tokens)} tokens")
    if manifest.sample_rate <= 0 or manifest.frame_stride <= 0:
        raise ModelError(f"speech model manifest {path}: sample_rate and frame_stride must be positive")


def ctc_words(logits: np.ndarray, manifest: CtcManifest, offset_s: float = 0.0) -> tuple[Word, ...]:
    """Greedy CTC decoding of one segment's logits [frames, vocab] into timed words."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    best = probs.argmax(axis=1)
    seconds = manifest.frame_stride / manifest.sample_rate
    words: list[Word] = []
    word = _Building()
    previous = -1
    for frame, token_id in enumerate(best.tolist()):
        if token_id == previous:
            word.extend(frame)  # a repeat continues the token it repeats
            continue
        previous = token_id
        token = manifest.tokens[token_id]
        if token in (manifest.word_separator, " "):
            word.close(words, seconds, offset_s)
        elif token_id != manifest.blank_id and not (token.startswith("<") and token.endswith(">")):
            word.add(token, frame, float(probs[frame, token_id]))
        else:
            word.pause()
    word.close(words, seconds, offset_s)
    return tuple(words)


class _Building:
    """The word being read: its text, first and last frames and its tokens' probabilities."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.text, self.first, self.last, self.open = "", 0, 0, False
        self.probs: list[float] = []

    def add(self, token: str, frame: int, prob: float) -> None:
        if not self.text:
            self.first = frame
        self.text += token
        self.last, self.open = frame, True
        self.probs.append(prob)

    def extend(self, frame: int) -> None:
        if self.open:
            self.last = frame

    def pause(self) -> None:
        self.open = False  # a blank: the token before it has ended

    def close(self, words: list[Word], seconds: float, offset_s: float) -> None:
        if self.text:
            words.append(Word(text=self.text.lower(), confidence=round(float(np.mean(self.probs)), 4),
                              start_s=round(offset_s + self.first * seconds, 3),
                              end_s=round(offset_s + (self.last + 1) * seconds, 3)))
        self.reset()


class OnnxCtcEngine:
    """A CTC model run through udfs/onnx.Session (one intra-op thread, CUDA where available)."""

    name = "onnx"

    def __init__(self, session: Session, manifest: CtcManifest) -> None:
        names = [name for name, _, _ in session.inputs]
        if manifest.input not in names:
            raise ModelError(f"the speech model has no input {manifest.input!r}; it has {names}")
        self.session = session
        self.manifest = manifest
        self._letters = {c.lower() for token in manifest.tokens for c in token if len(token) == 1}

    @classmethod
    def from_dir(cls, model_dir: Path) -> OnnxCtcEngine:
        manifest = read_ctc_manifest(model_dir)
        return cls(Session(_model_bytes(model_dir, manifest)), manifest)

    def transcribe(self, samples: np.ndarray, sr: int = 16000, offset_s: float = 0.0) -> Transcript:
        audio = to_rate(samples, sr, self.manifest.sample_rate)
        if audio.size < self.manifest.frame_stride:
            return Transcript(text="", words=(), engine=self.name)
        words = ctc_words(self.logits(audio), self.manifest, offset_s)
        return Transcript(text=" ".join(word.text for word in words), words=words, engine=self.name)

    def logits(self, audio: np.ndarray) -> np.ndarray:
        if self.manifest.normalize:
            audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        outputs = [self.manifest.output] if self.manifest.output else []  # []: every output
        logits = self.session.run(outputs, {self.manifest.input: audio[np.newaxis, :].astype(np.float32)})[0]
        return np.asarray(logits, dtype=np.float32)[0]

    def stream(self, sr: int = 16000, offset_s: float = 0.0) -> BufferedStream:
        return BufferedStream(self, sr, offset_s)

    def spot(self, samples: np.ndarray, phrases: Sequence[str], sr: int = 16000,
             offset_s: float = 0.0) -> tuple[KeywordHit, ...]:
        return search(self.transcribe(samples, sr, offset_s), phrases)

    def unknown_words(self, phrase: str) -> list[str]:
        """Words with a character the model has no token for (a character vocabulary)."""
        return [word for word in words_of(phrase) if not set(word) <= self._letters]


class BufferedStream:
    """Keeps the chunks and transcribes them at `finish`; `push` has no partial text."""

    def __init__(self, engine: OnnxCtcEngine, sr: int, offset_s: float) -> None:
        self._engine, self._sr, self._offset_s = engine, sr, offset_s
        self._chunks: list[np.ndarray] = []

    def push(self, chunk: np.ndarray) -> str:
        self._chunks.append(np.asarray(chunk, dtype=np.float32))
        return ""

    def finish(self) -> Transcript:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
        return self._engine.transcribe(audio, self._sr, self._offset_s)


def search(transcript: Transcript, phrases: Sequence[str]) -> tuple[KeywordHit, ...]:
    """Each place where a phrase's words occur in a row in the transcript."""
    heard = [word.text for word in transcript.words]
    hits = []
    for phrase in dict.fromkeys(" ".join(words_of(p)) for p in phrases if words_of(p)):
        wanted = phrase.split()
        for i in range(len(heard) - len(wanted) + 1):
            if heard[i:i + len(wanted)] == wanted:
                span = transcript.words[i:i + len(wanted)]
                hits.append(KeywordHit(phrase=phrase, start_s=span[0].start_s, end_s=span[-1].end_s,
                                       score=round(min(word.confidence for word in span), 4)))
    return tuple(sorted(hits, key=lambda hit: (hit.start_s, hit.phrase)))


def _model_bytes(model_dir: Path, manifest: CtcManifest) -> bytes:
    if manifest.sha256:
        return read_checked(model_dir, manifest.file, manifest.sha256, f"the speech model of {model_dir}")
    path = model_dir / manifest.file
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"speech model file {path} is missing ({exc.strerror})") from exc
