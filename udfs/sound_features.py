"""Frame and per-second features of mono audio, the measuring half of the sound-pattern core.

Audio is cut into hops of 20 ms (`sr // 50` samples, so a second is exactly 50 hops at the
usual rates) and each hop is analysed through a 40 ms Hann window that ends where the hop ends.
A frame therefore depends only on its own hop and the one before, so a stream fed in chunks of
any size gives the same frames as the whole signal at once (`Framer` keeps the previous hop), up
to the float rounding of BLAS in the mel projection.

Spectral features read only the band up to 8 kHz, whatever the rate: 22.05, 44.1 and 48 kHz
audio then looks like the 16 kHz audio the thresholds were set on. 8 kHz audio has only the band
up to 4 kHz; it is analysed as it is (centroids come out lower; on the shared clips the classes
stay the same, see bench/results/sounds.json).

`summarise` turns the 50 frames of one second into a few numbers (`Second`), which is all the
classifier and the stream state keep.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.fft import dct, rfft

FRAMES_PER_SECOND = 50
BAND_HZ = 8000.0
MELS = 40
MFCCS = 13
FLOOR_DB = -100.0  # dBFS given to digital silence, so logs and means stay finite
# Mel-band level floor for the onset flux: fluctuations of a near-silent band are not onsets.
FLUX_FLOOR_DB = -80.0
# Tempo: autocorrelation of the onset strength over the music seconds, lags 40-200 BPM, weighted
# by a log-normal prior at 120 BPM (one octave wide, as librosa's beat tracker).
TEMPO_LAGS = range(15, 76)
TEMPO_MIN_SECONDS = 4


# DCT-II (orthonormal) rows for the MFCCs, built once: a 13x40 product costs a tenth of a call
# through scipy.fft for one vector a second.
DCT_ROWS = dct(np.eye(MELS), type=2, norm="ortho", axis=0)[:MFCCS]


def db(power: np.ndarray | float) -> np.ndarray:
    """Power (mean square of -1..1 samples) to dBFS, floored at FLOOR_DB."""
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


@dataclass(frozen=True)
class Frames:
    """Per-frame features of consecutive 20 ms hops (arrays of equal length)."""

    power: np.ndarray  # mean square of the hop's samples
    peak: np.ndarray  # largest absolute sample of the hop
    zcr: np.ndarray  # zero crossings per sample within the hop
    centroid: np.ndarray  # Hz, of the windowed spectrum up to the band edge
    flatness: np.ndarray  # geometric / arithmetic mean of that power spectrum, 0..1
    mel_db: np.ndarray  # [frames, MELS] log mel energies
    flux: np.ndarray  # mean positive rise of the mel levels since the frame before (dB)

    def __len__(self) -> int:
        return len(self.power)


class Framer:
    """Cuts a stream into 20 ms hops and measures each; keeps one hop of history."""

    def __init__(self, sr: int) -> None:
        if sr < 1000:
            raise ValueError(f"sample rate {sr} Hz is too low for sound features")
        import librosa  # only for the mel filter bank, built once

        self.sr = sr
        self.hop = max(1, round(sr / FRAMES_PER_SECOND))
        self._window = np.hanning(2 * self.hop + 2)[1:-1].astype(np.float32)
        freqs = np.fft.rfftfreq(2 * self.hop, 1.0 / sr)
        self._bins = int(np.searchsorted(freqs, min(BAND_HZ, sr / 2), side="right"))
        self._freqs = freqs[: self._bins].astype(np.float32)
        mel = librosa.filters.mel(sr=sr, n_fft=2 * self.hop, n_mels=MELS, fmin=50.0,
                                  fmax=min(BAND_HZ, sr / 2), norm=None)
        self._mel = np.ascontiguousarray(mel[:, : self._bins].T, dtype=np.float32)  # F-order is 20x slower
        self._history = np.zeros(self.hop, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._last_mel = np.full(MELS, FLUX_FLOOR_DB, dtype=np.float32)

    def push(self, samples: np.ndarray) -> Frames | None:
        """Frames completed by these samples (None when none was); samples: 1-D float32."""
        data = np.concatenate([self._history, self._pending, samples])
        count = (len(data) - self.hop) // self.hop
        if count == 0:
            self._pending = data[self.hop:]
            return None
        used = (count + 1) * self.hop
        self._history, self._pending = data[used - self.hop: used], data[used:]
        windows = np.lib.stride_tricks.sliding_window_view(data[:used], 2 * self.hop)[:: self.hop]
        return self._measure(windows)

    def _measure(self, windows: np.ndarray) -> Frames:
        hops = windows[:, self.hop:]
        power = np.einsum("ij,ij->i", hops, hops, dtype=np.float64) / self.hop
        peak = np.abs(hops).max(axis=1)
        signs = np.signbit(hops)
        zcr = np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1) / self.hop
        spectrum = rfft(windows * self._window, axis=1)[:, : self._bins]
        spec = spectrum.real ** 2 + spectrum.imag ** 2 + np.float32(1e-20)
        total = spec.sum(axis=1, dtype=np.float64)
        centroid = (spec * self._freqs).sum(axis=1, dtype=np.float64) / total  # per row: batch-size-proof
        flatness = np.exp(np.mean(np.log(spec), axis=1, dtype=np.float64)) / (total / spec.shape[1])
        # Products of <= 50 rows stay on one BLAS thread; a 500-row one is split across threads
        # and runs several times slower on a busy 2-core host.
        mel = np.concatenate([spec[i:i + FRAMES_PER_SECOND] @ self._mel
                              for i in range(0, len(spec), FRAMES_PER_SECOND)])
        mel_db = np.maximum(db(mel / np.float32(self.hop ** 2)), FLUX_FLOOR_DB)
        previous = np.vstack([self._last_mel[None, :], mel_db[:-1]])
        self._last_mel = mel_db[-1]
        flux = np.maximum(mel_db - previous, 0.0).mean(axis=1)
        return Frames(power, peak, zcr, centroid, flatness, mel_db.astype(np.float32), flux)


def join(parts: list[Frames]) -> Frames:
    """Concatenate frame batches, in order."""
    return Frames(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Frames)))


def cut(frames: Frames, start: int, stop: int | None = None) -> Frames:
    """Frames[start:stop]."""
    return Frames(*(getattr(frames, f.name)[start:stop] for f in fields(Frames)))


@dataclass(frozen=True)
class Second:
    """What one second (or a trailing part of at least half a second) of audio looks like."""

    rms_db: float  # dBFS of the mean power
    p90_db: float  # the level that only the loudest tenth of the hops exceed
    low_energy: float  # share of hops more than 6 dB below the second's mean power
    level_std: float  # spread of the hop levels (dB): speech swings between syllables and gaps
    flatness: float  # median over the audible hops: ~0.5+ for noise, <0.05 for tones
    centroid_hz: float  # power-weighted mean over the hops
    flux: float  # mean onset strength (dB per hop)
    onsets: int  # peaks of the onset strength
    zcr: float
    zcr_std: float  # voiced/unvoiced alternation makes this large in speech
    sustain: float  # mean correlation of consecutive frames' departures from the second's mean
    # mel spectrum: near 0 for stationary noise, high where notes, formants or events persist
    mfcc: tuple[float, ...]  # mean of the 13 MFCCs
    envelope: tuple[float, ...]  # onset strength per hop (kept only until tempo reads it)


def summarise(frames: Frames) -> Second:
    """Reduce the frames of one second to a `Second`."""
    levels = db(frames.power)
    mean_power = float(np.mean(frames.power))
    audible = levels > db(mean_power) - 20.0
    departure = frames.mel_db - frames.mel_db.mean(axis=0, keepdims=True)
    departure /= np.linalg.norm(departure, axis=1, keepdims=True) + 1e-6
    sustain = float(np.mean(np.sum(departure[1:] * departure[:-1], axis=1))) if len(frames) > 1 else 0.0
    # The DCT is linear, so the MFCCs' mean is the DCT of the mean log-mel spectrum.
    mfcc = DCT_ROWS @ frames.mel_db.mean(axis=0, dtype=np.float64)
    return Second(
        rms_db=float(db(mean_power)),
        p90_db=float(np.sort(levels)[int(0.9 * (len(levels) - 1))]),
        low_energy=float(np.mean(frames.power < mean_power / 4.0)),
        level_std=_std(levels),
        flatness=_median(frames.flatness[audible]),
        centroid_hz=float(np.sum(frames.centroid * frames.power) / (np.sum(frames.power) + 1e-30)),
        flux=float(np.mean(frames.flux)),
        onsets=count_onsets(frames.flux),
        zcr=float(np.mean(frames.zcr)),
        zcr_std=_std(frames.zcr),
        sustain=sustain,
        mfcc=tuple(float(v) for v in mfcc),
        envelope=tuple(float(v) for v in frames.flux),
    )


def _std(values: np.ndarray) -> float:
    """np.std without its dispatch overhead (it is called on 50 values several times a second)."""
    centred = values - values.mean()
    return float(np.sqrt(np.dot(centred, centred) / len(values)))


def _median(values: np.ndarray) -> float:
    ordered = np.sort(values)
    return float(ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2


def count_onsets(flux: np.ndarray) -> int:
    """Local maxima of the onset strength (within +-60 ms) that stand out of the second: above
    its mean plus one standard deviation and above 1 dB, so steady sound has few onsets."""
    if len(flux) < 3:
        return 0
    padded = np.concatenate([np.full(3, -np.inf), flux, np.full(3, -np.inf)])
    neighbourhood = np.max([padded[k:k + len(flux)] for k in range(7)], axis=0)
    threshold = max(float(flux.mean()) + _std(flux), 1.0)
    return int(np.count_nonzero((flux >= neighbourhood) & (flux > threshold)))


class Tempo:
    """Tempo from a running autocorrelation of the onset strength over the seconds marked as
    music: 61 lag sums and 75 hops of history, however long the stream."""

    def __init__(self) -> None:
        self._history = np.zeros(TEMPO_LAGS.stop)
        self._sums = np.zeros(len(TEMPO_LAGS))
        self.seconds = 0

    def update(self, envelope: np.ndarray, music: bool) -> None:
        centred = envelope - envelope.mean()
        joined = np.concatenate([self._history, centred])
        if music:
            windows = np.lib.stride_tricks.sliding_window_view(joined, len(centred))
            self._sums += windows[len(self._history) - np.asarray(TEMPO_LAGS)] @ centred
            self.seconds += 1
        self._history = joined[-TEMPO_LAGS.stop:]

    def bpm(self) -> float:
        if self.seconds < TEMPO_MIN_SECONDS or self._sums.max() <= 0:
            return 0.0
        lags = np.asarray(TEMPO_LAGS, dtype=np.float64)
        bpms = 60.0 * FRAMES_PER_SECOND / lags
        score = self._sums * np.exp(-0.5 * np.log2(bpms / 120.0) ** 2)
        j = int(np.argmax(score))
        if 0 < j < len(score) - 1:  # parabolic refinement between whole-hop lags
            left, mid, right = score[j - 1], score[j], score[j + 1]
            offset = 0.5 * (left - right) / (left - 2 * mid + right) if left - 2 * mid + right else 0.0
            return round(60.0 * FRAMES_PER_SECOND / (lags[j] + offset), 1)
        return round(float(bpms[j]), 1)


__all__ = ["FRAMES_PER_SECOND", "Framer", "Frames", "Second", "Tempo", "cut", "db", "join", "summarise"]
