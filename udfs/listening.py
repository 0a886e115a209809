"""Audio analysis core: decoded chunks of several audio parts in, AudioSummary out. The same
code answers the Flink job (through udfs/media_pipeline.py) and the CLI.

Per chunk (10 s of mono 16 kHz audio) of each part being listened to:

    voice activity   Silero VAD, one batched model call per 32 ms step across all parts' chunks
    known clips      landmarks of the last 15 s (this chunk and the tail of the one before, so a
                     clip straddling two chunks is still heard whole), matched at several speeds
    chromaprint      fed the first two minutes; compared with the references at the end
    sound patterns   per-second classes (music, speech, silence, other), loudness, loud events
    speech          (when `speech_engine` is set and a rule reads text) the chunk's speech spans,
                     transcribed and searched for tracked phrases by the caller's speech thread

A `Listening` holds one part's state between chunks, bounded whatever the length of the audio:
the recurrent VAD state, a 5 s tail, chromaprint's running state, per-second summaries. Models are
optional: a missing one turns its analysis off with one log line. No I/O, no clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import ModelError
from schemas.media import AudioSummary, Keyword, KnownClip, Segment, SoundSpan
from udfs.audio import ANALYSIS_RATE, AudioInfo
from udfs.chroma import MAX_SECONDS, ChromaIndex, chroma_fingerprint
from udfs.landmarks import ClipIndex

log = logging.getLogger(__name__)
TAIL_S = 5.0  # audio of the previous chunk matched again with the next one
MAX_SEGMENTS = 200  # speech segments kept in the findings (the share counts them all)
CARRY_GAP_S = 0.3  # speech this close to a chunk boundary continues across it
MAX_CARRY_S = 30.0  # longer speech is transcribed in pieces anyway
AUTO_ALL_PHASES_UP_TO = 250  # references; see TRACKIUS_AUDIO_MATCH_PHASES
MIN_SPOT_PHONES = 7  # no unrelated phrase this long was spotted in the speech measured


@dataclass
class Listening:
    """One part's analysis state between chunks."""

    info: AudioInfo
    transcribe: bool = False  # its speech goes to the speech-to-text thread
    vad: Any = None  # a VadStream
    sounds: Any = None  # a SoundTracker
    started_s: float = 0.0  # media time of the next chunk's first sample
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    chroma_audio: list[np.ndarray] = field(default_factory=list)
    chroma_s: float = 0.0
    clips: dict[str, KnownClip] = field(default_factory=dict)
    speech: list[Segment] = field(default_factory=list)
    carry: SpeechSpan | None = None  # speech running into the next chunk, not transcribed yet
    transcript: list[str] = field(default_factory=list)
    keywords: list[Keyword] = field(default_factory=list)
    chunks: int = 0


@dataclass(frozen=True)
class SpeechSpan:
    """Audio of one chunk where someone speaks, for the speech-to-text thread."""

    samples: np.ndarray
    start_s: float


class AudioAnalyzer:
    def __init__(self, vad: Any = None, clips: ClipIndex | None = None, chroma: ChromaIndex | None = None,
                 speech_engine: Any = None, sounds: bool = True) -> None:
        self.vad = vad
        self.clips = clips if clips is not None else ClipIndex()
        self.chroma = chroma if chroma is not None else ChromaIndex()
        self.speech_engine = speech_engine
        self.sounds = sounds
        self._refs = threading.Lock()  # references change on the operator's thread, match on ours
        self._matcher = ThreadPoolExecutor(1, thread_name_prefix="clip-match")
        self._phones: dict[str, int] = {}
        self.models = {"vad": vad.version} if vad is not None else {}
        if speech_engine is not None:
            self.models["speech"] = speech_engine.name

    @classmethod
    def create(cls, model_dir: Path, manifest: Path, speech: str = "pocketsphinx",
               speech_model_dir: Path | None = None, phases: int = 0) -> AudioAnalyzer:
        from udfs.models import read_manifest
        from udfs.vad import VoiceActivity

        vad = None
        try:
            vad = VoiceActivity(model_dir, read_manifest(manifest)["vad"])
        except ModelError as exc:
            log.warning("voice activity detection disabled: %s", exc)
        return cls(vad, clip_index(phases), speech_engine=_speech_engine(speech, speech_model_dir))

    # --- per part ---------------------------------------------------------------------------

    def start(self, info: AudioInfo, transcribe: bool = False) -> Listening:
        from udfs.sounds import SoundTracker

        return Listening(info, transcribe=transcribe and self.speech_engine is not None,
                         vad=self.vad.stream(ANALYSIS_RATE) if self.vad is not None else None,
                         sounds=SoundTracker(ANALYSIS_RATE) if self.sounds else None)

    def analyse(self, parts: Sequence[Listening], chunks: Sequence[np.ndarray]) -> list[list[SpeechSpan]]:
        """Advance each part by its chunk; the speech spans to transcribe come back per part.
        Clip matching runs on a thread of its own while the VAD steps (both mostly outside the
        GIL: onnxruntime and numpy), so the chunk costs about the slower of the two, not the sum."""
        matching = self._matcher.submit(self._match_all, parts, chunks) if len(self.clips) else None
        probs = self._voice(parts, chunks)
        if matching is not None:
            matching.result()
        spans = []
        for part, chunk, prob in zip(parts, chunks, probs):
            spans.append(self._advance(part, chunk, prob))
        return spans

    def finish(self, part: Listening) -> list[SpeechSpan]:
        """After the last chunk: the chromaprint comparison; the speech still held back."""
        if part.chroma_audio and len(self.chroma):
            words = chroma_fingerprint(np.concatenate(part.chroma_audio), ANALYSIS_RATE)
            with self._refs:
                found = self.chroma.match(words)
            if found is not None and found.clip_id not in part.clips:
                part.clips[found.clip_id] = KnownClip(found.clip_id, found.name, "chromaprint",
                                                      round(1 - found.bit_error_rate, 4), found.offset_s, 0.0)
        part.chroma_audio = []
        held, part.carry = part.carry, None
        return [held] if held is not None else []

    def summary(self, part: Listening, final: bool) -> AudioSummary:
        voice = part.vad.finish() if final and part.vad is not None else None
        segments = [Segment(round(a, 3), round(b, 3)) for a, b in voice.segments] if voice else part.speech
        share = voice.speech_share if voice else _share(part.speech, part.started_s)
        profile = part.sounds.finish() if final and part.sounds is not None else None
        summary = AudioSummary(
            analysed_s=round(part.started_s, 3), duration_s=part.info.duration_s, codec=part.info.codec,
            source_rate=part.info.source_rate, channels=part.info.channels, speech_share=round(share, 4),
            speech=tuple(segments[:MAX_SEGMENTS]), clips=tuple(sorted(part.clips.values(), key=lambda c: c.at_s)),
            transcript=" ".join(t for t in part.transcript if t), keywords=tuple(part.keywords))
        return _with_profile(summary, profile) if profile is not None else summary

    def transcribe(self, part: Listening, spans: Sequence[SpeechSpan], phrases: Sequence[str]) -> str:
        """Speech-to-text and spotting of `phrases` over a chunk's spans. Returns the text for
        the text analysis: the transcript, then the spotted phrases it does not already contain
        (spotting listens for those words specifically, so it hears some the transcript misses)."""
        words, spotted = [], []
        phrases = self._spottable(phrases)
        for span in spans:
            heard = self.speech_engine.transcribe(span.samples, ANALYSIS_RATE, span.start_s)
            words.append(heard.text)
            if phrases:
                for hit in self.speech_engine.spot(span.samples, phrases, ANALYSIS_RATE, span.start_s):
                    part.keywords.append(Keyword(hit.phrase, round(hit.start_s, 2), round(hit.end_s, 2),
                                                 round(hit.score, 3)))
                    spotted.append(hit.phrase)
        text = " ".join(w for w in words if w)
        part.transcript.append(text)
        missing = sorted({p for p in spotted if f" {p} " not in f" {text.lower()} "})
        return f"{text}. {', '.join(missing)}" if missing and text else ", ".join(missing) or text

    def _spottable(self, phrases: Sequence[str]) -> list[str]:
        """The phrases worth spotting: with pocketsphinx, those of at least MIN_SPOT_PHONES phones
        (shorter ones, "eth", "down", fire on unrelated speech: measured in bench/stt.py)."""
        phones = getattr(self.speech_engine, "phones", None)
        if phones is None:
            return list(phrases)
        keep = []
        for phrase in phrases:
            if phrase not in self._phones:
                unknown = self.speech_engine.unknown_words(phrase)
                self._phones[phrase] = 0 if unknown else phones(phrase)
            if self._phones[phrase] >= MIN_SPOT_PHONES:
                keep.append(phrase)
        return keep

    # --- steps ------------------------------------------------------------------------------

    def _voice(self, parts: Sequence[Listening], chunks: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        streams = [(i, p.vad) for i, p in enumerate(parts) if p.vad is not None]
        probs: list[np.ndarray | None] = [None] * len(parts)
        if streams:
            got = self.vad.push_many([s for _, s in streams], [chunks[i] for i, _ in streams])
            for (i, _), prob in zip(streams, got):
                probs[i] = prob
        return probs

    def _advance(self, part: Listening, chunk: np.ndarray, probs: np.ndarray | None) -> list[SpeechSpan]:
        start = part.started_s
        if part.chroma_s < MAX_SECONDS and len(self.chroma):
            part.chroma_audio.append(chunk)
            part.chroma_s += len(chunk) / ANALYSIS_RATE
        if part.sounds is not None:
            part.sounds.push(chunk, probs)
        spans = []
        if probs is not None:
            chunk_segments = self.vad.hysteresis.result(probs, len(chunk), ANALYSIS_RATE).segments
            part.speech.extend(Segment(round(start + a, 3), round(start + b, 3)) for a, b in chunk_segments)
            if part.transcribe:
                spans = _carried(part, _spans(chunk, chunk_segments, start), start, start + len(chunk) / ANALYSIS_RATE)
        part.started_s = start + len(chunk) / ANALYSIS_RATE
        part.chunks += 1
        return spans

    def _match_all(self, parts: Sequence[Listening], chunks: Sequence[np.ndarray]) -> None:
        for part, chunk in zip(parts, chunks):
            self._match_clips(part, chunk, part.started_s)

    def _match_clips(self, part: Listening, chunk: np.ndarray, start: float) -> None:
        query = np.concatenate([part.tail, chunk])
        query_start = start - len(part.tail) / ANALYSIS_RATE
        part.tail = query[-int(TAIL_S * ANALYSIS_RATE):]
        with self._refs:
            found = self.clips.match_audio(query, ANALYSIS_RATE)
        if found is None or found.clip_id in part.clips:
            return
        at = query_start + found.query_offset_s
        part.clips[found.clip_id] = KnownClip(
            found.clip_id, found.name, "landmarks", round(found.confidence, 4),
            round(found.offset_s + found.query_offset_s * found.speed, 3), round(max(0.0, at), 3),
            round(found.speed, 4))

    # --- references -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.clips)

    def add(self, ref_id: str, name: str, signature: bytes) -> None:
        """Index a reference from its stored signature (udfs/clip_refs.py)."""
        from udfs.clip_refs import clip_signature_from_bytes

        marks, words = clip_signature_from_bytes(signature)
        with self._refs:
            self.clips.add(ref_id, name, marks)
            if len(words):
                self.chroma.add(ref_id, name, words)

    def remove(self, ref_id: str) -> None:
        with self._refs:
            self.clips.remove(ref_id)
            self.chroma.remove(ref_id)



def clip_index(phases: int = 0) -> ClipIndex:
    """The clip index with `phases` query framings; 0 (auto): three while the index is small
    enough for the 10 s budget (AUTO_ALL_PHASES_UP_TO references), one beyond."""
    from udfs.landmarks import QUERY_PHASES

    return ClipIndex(phases=QUERY_PHASES[:phases] if phases > 0 else QUERY_PHASES,
                     all_phases_up_to=AUTO_ALL_PHASES_UP_TO if phases == 0 else None)


def _spans(chunk: np.ndarray, segments: Sequence[tuple[float, float]], start: float,
           join_gap_s: float = 1.0) -> list[SpeechSpan]:
    """Speech segments of a chunk as audio, close ones joined (the recogniser likes context)."""
    joined: list[list[float]] = []
    for a, b in segments:
        if joined and a - joined[-1][1] <= join_gap_s:
            joined[-1][1] = b
        else:
            joined.append([a, b])
    return [SpeechSpan(chunk[int(a * ANALYSIS_RATE):int(b * ANALYSIS_RATE)], start + a) for a, b in joined]


def _carried(part: Listening, spans: list[SpeechSpan], chunk_start_s: float,
             chunk_end_s: float) -> list[SpeechSpan]:
    """Speech cut by a chunk boundary is transcribed whole: a span reaching the chunk's end waits
    for the next chunk (up to MAX_CARRY_S), and joins the span that chunk starts with."""
    held, part.carry = part.carry, None
    if held is not None:
        if spans and spans[0].start_s - chunk_start_s <= CARRY_GAP_S:
            spans[0] = SpeechSpan(np.concatenate([held.samples, spans[0].samples]), held.start_s)
        else:
            spans.insert(0, held)
    if spans:
        last = spans[-1]
        ends_s = last.start_s + len(last.samples) / ANALYSIS_RATE
        if chunk_end_s - ends_s <= CARRY_GAP_S and len(last.samples) < MAX_CARRY_S * ANALYSIS_RATE:
            part.carry = spans.pop()
    return spans


def _share(segments: Sequence[Segment], total_s: float) -> float:
    return min(1.0, sum(s.end_s - s.start_s for s in segments) / total_s) if total_s > 0 else 0.0


def _with_profile(summary: AudioSummary, profile: Any) -> AudioSummary:
    from dataclasses import replace

    from schemas.media import LoudSound

    return replace(
        summary, sounds=tuple(SoundSpan(label, float(a), float(b)) for label, a, b in _runs(profile.seconds)),
        sound_shares={k: round(float(v), 4) for k, v in profile.shares.items()},
        loudness_db=round(float(profile.loudness_db), 2), peak_db=round(float(profile.peak_db), 2),
        features={k: round(float(v), 4) for k, v in profile.features.items() if np.isscalar(v)},
        loud_sounds=tuple(LoudSound(round(e.at_s, 3), round(e.peak_db, 2), round(e.jump_db, 2))
                          for e in profile.events))


def _runs(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    runs: list[tuple[str, int, int]] = []
    for second, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], second + 1)
        else:
            runs.append((label, second, second + 1))
    return runs


def _speech_engine(kind: str, model_dir: Path | None) -> Any:
    if kind == "none":
        return None
    try:
        from udfs.speech import create_engine

        return create_engine(kind, model_dir)
    except Exception as exc:  # noqa: BLE001 - speech-to-text is an extra: without it the rest runs
        log.warning("speech-to-text disabled (%s): %s", kind, exc)
        return None
