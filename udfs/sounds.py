"""Sound patterns of a piece of audio: what each second is (music, speech, silence, other sound),
how loud it is, a few librosa-style features, and sudden loud events.

Pure core: numpy in, `SoundProfile` out; no I/O, no clock, and no model of its own. The caller's
Silero VAD probabilities (one per 32 ms window) may be passed in and are then the main evidence
for speech; without them speech is told from music by the audio alone, less reliably.

`SoundTracker` reads a stream in chunks of any length and keeps, per second, one byte of class
and a few running sums, so hours of audio take bounded memory. `profile(x)` is exactly
`SoundTracker.push(x)` then `finish()`, and any chunking gives the one-shot classes, shares and
events (features are computed per 20 ms hop and reduced per second, see udfs/sound_features.py;
summary floats may differ in the last digits from BLAS rounding). With VAD probabilities, a
second is classified only once the windows centred in it have arrived, so `push` may return it
one call late; seconds held more than MAX_WAITING are classified without VAD.

Seconds are whole 50-hop seconds from the start; a trailing part of at least half a second is a
second of its own, a shorter one only counts towards loudness. Any sample rate is read natively
(spectral features only look up to 8 kHz, so 16-48 kHz audio is judged alike; 8 kHz audio lacks
the 4-8 kHz band). Loudness is RMS dBFS (no K-weighting, so not LUFS); peaks are sample peaks.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from udfs.audio import mono_float
from udfs.sound_features import (
    FRAMES_PER_SECOND,
    Framer,
    Frames,
    Second,
    Tempo,
    cut,
    db,
    join,
    summarise,
)

CLASSES = ("music", "speech", "silence", "other")

# Silence: even the loudest tenth of the second is below -50 dBFS (room tone, tape hiss, a fade).
SILENCE_P90_DB = -50.0
# VAD (mean over the second): at Silero's own threshold it is speech; between LOW and that the
# audio cues below must agree; under LOW the VAD's "no" wins over the audio cues.
VAD_SPEECH, VAD_LOW = 0.5, 0.25
# Stationary noise (hiss, rain, fans): consecutive frames' departures from the second's mean
# spectrum are uncorrelated (white/pink noise 0.0-0.1; music, speech and events 0.3-0.9).
NOISE_SUSTAIN = 0.25
# Power centred above 2.5 kHz in the 0-8 kHz band is birdsong, hiss or clatter; voiced speech
# sits at 0.4-1.5 kHz and music mostly below 2 kHz.
OTHER_CENTROID_HZ = 2500.0
# A drone (engine, hum, fan tone): almost no onsets and a level that barely moves.
DRONE_FLUX_DB, DRONE_LEVEL_STD_DB = 0.3, 1.5
# Bursts in quiet (claps, knocks, slams): 80% of the hops far below the second's mean power.
# Speech pauses leave 30-70% of the hops low, music less.
BURSTY_LOW_ENERGY = 0.8
# Speech without VAD (the low-energy-frame cue of Scheirer & Slaney): syllable gaps leave at
# least 30% of hops 6 dB under the mean, with the power centred in the voice band.
SPEECH_LOW_ENERGY, SPEECH_CENTROID_HZ = 0.3, (350.0, 2500.0)

# Loud events: a 20 ms hop at least JUMP_DB above the median level of the 3 s before it (the
# median is taken every 200 ms and leaves the last 100 ms out, so an attack never raises its own
# background), and itself above LOUD_DB.
# 20 dB is 10x the amplitude: drum hits in mixed music rise 6-12 dB above the median, a shot, a
# slam or a scream over speech or street noise 20-45 dB. At 18 dB, drum-and-bass drops and words
# after long pauses in the shared clips (18-19.5 dB) became events too. The background is floored
# at BACKGROUND_FLOOR_DB so a faint sound after digital silence is not an event.
JUMP_DB, LOUD_DB, BACKGROUND_FLOOR_DB = 20.0, -40.0, -70.0
BACKGROUND_HOPS, BACKGROUND_GAP, BACKGROUND_MIN = 150, 5, 25
BACKGROUND_STEP = 10  # hops sharing one background median (200 ms)
REFRACTORY_HOPS = 50  # one event per second at most: a burst's echoes are not new events
MAX_EVENTS = 1000  # bounded memory; `SoundProfile.events_dropped` counts the rest

VAD_WINDOW_S = 0.032
MAX_WAITING = 10  # seconds held for VAD probabilities before being classified without them
SLICE_S = 10  # long chunks are analysed 10 s at a time to bound the working memory


@dataclass(frozen=True)
class LoudEvent:
    at_s: float  # start of the 20 ms hop that rose
    peak_db: float  # sample peak of that hop, dBFS
    jump_db: float  # its RMS level above the running background


@dataclass(frozen=True)
class SoundProfile:
    seconds: tuple[str, ...]  # one of CLASSES per second
    shares: dict[str, float]  # each class's share of the seconds (all 0 when there are none)
    loudness_db: float  # RMS dBFS over the whole audio (-100 for silence or nothing)
    peak_db: float  # sample peak, dBFS
    features: dict[str, float]  # means over the non-silent seconds: centroid_hz, flatness,
    # onset_rate (per s), zcr, low_energy; tempo_bpm over the music seconds (0 if too few)
    mfcc_mean: tuple[float, ...]  # 13 MFCCs (log-mel, DCT-II), mean over the non-silent seconds
    events: tuple[LoudEvent, ...]
    events_dropped: int = 0


def classify(second: Second, vad: float | None = None) -> str:
    """The class of one second from its features and, if known, its mean VAD probability."""
    if second.p90_db < SILENCE_P90_DB:
        return "silence"
    if vad is not None and vad >= VAD_SPEECH:
        return "speech"
    if second.sustain < NOISE_SUSTAIN or second.centroid_hz > OTHER_CENTROID_HZ:
        return "other"
    if second.flux < DRONE_FLUX_DB and second.level_std < DRONE_LEVEL_STD_DB:
        return "other"
    if second.low_energy >= BURSTY_LOW_ENERGY:
        return "other"
    voice_band = SPEECH_CENTROID_HZ[0] <= second.centroid_hz <= SPEECH_CENTROID_HZ[1]
    if voice_band and second.low_energy >= SPEECH_LOW_ENERGY and (vad is None or vad >= VAD_LOW):
        return "speech"
    return "music"


class _LoudWatch:
    """Finds sudden rises above a running median; keeps the last 3 s of hop levels."""

    def __init__(self, hop_s: float) -> None:
        self._hop_s = hop_s
        self._levels = np.full(BACKGROUND_HOPS, np.nan)
        self._hops = 0
        self._last = -REFRACTORY_HOPS
        self.events: list[LoudEvent] = []
        self.dropped = 0

    def update(self, frames: Frames) -> None:
        levels = db(frames.power)
        history = np.concatenate([self._levels, levels])
        background = np.repeat(self._backgrounds(history, len(levels)), BACKGROUND_STEP)[: len(levels)]
        for i in np.flatnonzero((levels >= background + JUMP_DB) & (levels >= LOUD_DB)):
            self._record(self._hops + int(i), float(levels[i]), float(background[i]), frames.peak[i])
        self._levels = history[-BACKGROUND_HOPS:]
        self._hops += len(levels)

    @staticmethod
    def _backgrounds(history: np.ndarray, count: int) -> np.ndarray:
        """Median level before each group of BACKGROUND_STEP hops (inf while too little is known);
        one median per group rather than per hop keeps the cost at 5 medians a second."""
        groups = -(-count // BACKGROUND_STEP)
        span = BACKGROUND_HOPS - BACKGROUND_GAP
        if not np.isnan(history[:BACKGROUND_HOPS]).any():  # after the first 3 s: all at once
            windows = np.lib.stride_tricks.sliding_window_view(history, span)[::BACKGROUND_STEP]
            return np.maximum(np.median(windows[:groups], axis=1), BACKGROUND_FLOOR_DB)
        out = np.full(groups, np.inf)
        for g in range(groups):
            past = history[g * BACKGROUND_STEP: g * BACKGROUND_STEP + span]
            past = past[~np.isnan(past)]
            if len(past) >= BACKGROUND_MIN:
                out[g] = max(float(np.median(past)), BACKGROUND_FLOOR_DB)
        return out

    def _record(self, hop: int, level: float, background: float, peak: float) -> None:
        if hop - self._last < REFRACTORY_HOPS:
            return
        self._last = hop
        if len(self.events) >= MAX_EVENTS:
            self.dropped += 1
            return
        self.events.append(LoudEvent(round(hop * self._hop_s, 3), round(float(db(peak ** 2)), 2),
                                     round(level - background, 2)))


@dataclass
class _Sums:
    """Running totals for the summary features (non-silent seconds)."""

    seconds: int = 0
    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("centroid_hz", "flatness", "onset_rate", "zcr", "low_energy"), 0.0))
    mfcc: np.ndarray = field(default_factory=lambda: np.zeros(13))

    def add(self, second: Second) -> None:
        self.seconds += 1
        for name, value in (("centroid_hz", second.centroid_hz), ("flatness", second.flatness),
                            ("onset_rate", second.onsets), ("zcr", second.zcr),
                            ("low_energy", second.low_energy)):
            self.values[name] += value
        self.mfcc += second.mfcc

    def means(self) -> tuple[dict[str, float], tuple[float, ...]]:
        n = max(self.seconds, 1)
        return ({k: round(v / n, 4) for k, v in self.values.items()},
                tuple(round(float(v) / n, 3) for v in self.mfcc))


class SoundTracker:
    """Sound patterns of one stream fed in chunks; `finish()` equals `profile()` of the whole."""

    def __init__(self, sr: int = 16000) -> None:
        self._framer = Framer(sr)
        self._hop_s = self._framer.hop / sr
        self._slice = SLICE_S * sr
        self._frames: list[Frames] = []
        self._seconds_seen = 0
        self._waiting: deque[tuple[int, Second]] = deque()
        self._vad: dict[int, list[float]] = {}  # second -> [sum, count] of the VAD probabilities
        self._vad_windows = 0
        self._vad_given = False
        self._labels = bytearray()
        self._loud = _LoudWatch(self._hop_s)
        self._tempo = Tempo()
        self._sums = _Sums()
        self._power, self._hops, self._peak = 0.0, 0, 0.0

    def push(self, chunk: np.ndarray, speech_probs: np.ndarray | None = None) -> tuple[str, ...]:
        """Classes of the seconds this chunk (and these VAD windows) completed, in order."""
        done = len(self._labels)
        if speech_probs is not None:
            self._add_vad(np.nan_to_num(np.asarray(speech_probs, dtype=np.float64).ravel()))
        samples = mono_float(chunk)
        for start in range(0, len(samples), self._slice):
            frames = self._framer.push(samples[start:start + self._slice])
            if frames is not None:
                self._frames.append(frames)
                self._take_seconds(minimum=FRAMES_PER_SECOND)
        self._release(final=False)
        return tuple(CLASSES[i] for i in self._labels[done:])

    def finish(self) -> SoundProfile:
        self._take_seconds(minimum=FRAMES_PER_SECOND // 2)
        self._release(final=True)
        labels = tuple(CLASSES[i] for i in self._labels)
        shares = {name: round(labels.count(name) / len(labels), 4) if labels else 0.0 for name in CLASSES}
        features, mfcc = self._sums.means()
        features["tempo_bpm"] = self._tempo.bpm()
        return SoundProfile(
            seconds=labels, shares=shares,
            loudness_db=round(float(db(self._power / max(self._hops, 1))), 2),
            peak_db=round(float(db(self._peak ** 2)), 2), features=features, mfcc_mean=mfcc,
            events=tuple(self._loud.events), events_dropped=self._loud.dropped)

    def _take_seconds(self, minimum: int) -> None:
        """Cut whole seconds (or, at the end, a trailing part of >= minimum hops) off the frames."""
        if not self._frames:
            return
        frames = join(self._frames)
        start = 0
        while len(frames) - start >= minimum:
            second = cut(frames, start, start + FRAMES_PER_SECOND)
            self._loud.update(second)
            self._power += float(second.power.sum())
            self._hops += len(second)
            self._peak = max(self._peak, float(second.peak.max()))
            self._waiting.append((self._seconds_seen, summarise(second)))
            self._seconds_seen += 1
            start += len(second)
        rest = cut(frames, start)
        self._frames = [rest] if len(rest) else []
        if minimum < FRAMES_PER_SECOND and len(rest):  # a dropped tail still counts for loudness
            self._power += float(rest.power.sum())
            self._hops += len(rest)
            self._peak = max(self._peak, float(rest.peak.max()))
            self._frames = []

    def _add_vad(self, probs: np.ndarray) -> None:
        self._vad_given = True
        centres = (self._vad_windows + np.arange(len(probs)) + 0.5) * VAD_WINDOW_S
        seconds = (centres / (FRAMES_PER_SECOND * self._hop_s)).astype(int)  # by window centre
        if len(seconds):
            sums = np.bincount(seconds - seconds[0], weights=probs)
            counts = np.bincount(seconds - seconds[0])
            for offset in np.flatnonzero(counts):
                totals = self._vad.setdefault(int(seconds[0] + offset), [0.0, 0])
                totals[0] += float(sums[offset])
                totals[1] += int(counts[offset])
        self._vad_windows += len(probs)

    def _release(self, final: bool) -> None:
        """Classify the waiting seconds whose VAD windows are all in (or all, at the end)."""
        while self._waiting:
            index, second = self._waiting[0]
            end_s = (index + 1) * FRAMES_PER_SECOND * self._hop_s
            needed = math.ceil(end_s / VAD_WINDOW_S - 0.5)
            ready = not self._vad_given or self._vad_windows >= needed
            if not (ready or final or len(self._waiting) > MAX_WAITING):
                return
            self._waiting.popleft()
            totals = self._vad.pop(index, None)
            vad = totals[0] / totals[1] if totals and totals[1] else None
            label = classify(second, vad)
            self._labels.append(CLASSES.index(label))
            self._tempo.update(np.asarray(second.envelope), label == "music")
            if label != "silence":
                self._sums.add(second)
        for stale in [k for k in self._vad if k < len(self._labels)]:
            del self._vad[stale]


def profile(samples: np.ndarray, sr: int = 16000, speech_probs: np.ndarray | None = None) -> SoundProfile:
    """Sound profile of a whole piece of audio (mono or [samples, channels])."""
    tracker = SoundTracker(sr)
    tracker.push(samples, speech_probs)
    return tracker.finish()


__all__ = ["CLASSES", "LoudEvent", "SoundProfile", "SoundTracker", "classify", "profile"]
