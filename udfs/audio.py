"""Audio decoding: media bytes in, mono float32 chunks at one analysis rate out, in bounded memory.

    bytes ─► libsndfile (WAV, FLAC, OGG Vorbis/Opus, MP3)  ─┐
         └► ffmpeg (any container: MP4/M4A/AAC, WebM, MKV,   ├─► soxr stream resampler ─► chunks of chunk_s
            MOV, AVI …; and whatever libsndfile refuses)  ──┘

Long media is never held whole: libsndfile reads one block at a time, ffmpeg writes raw samples to
a pipe we read a chunk at a time, and soxr's streaming resampler keeps only its filter state, so a
three-hour file costs the same memory as ten seconds. Decoding stops at `max_s` (the part is then
flagged as cut short). Channels are averaged to mono.

Errors are MediaError codes the findings carry: `empty` (no bytes), `no_audio` (a container with
no audio stream), `unsupported` (a codec nothing here decodes), `corrupt` (bytes that fail
mid-way or announce nonsense).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from schemas.errors import MediaError

ANALYSIS_RATE = 16000
BLOCK_FRAMES = 65536  # frames per libsndfile read (~1.4 s at 48 kHz)
_SNDFILE_TYPES = ("audio/wav", "audio/flac", "audio/ogg", "audio/mpeg")
_FFMPEG = "ffmpeg"
_FFPROBE = "ffprobe"


@dataclass(frozen=True)
class AudioInfo:
    codec: str  # as the decoder names it: "PCM_16", "VORBIS", "aac", …
    source_rate: int
    channels: int
    duration_s: float | None  # None when the container does not say
    decoder: str  # "libsndfile" or "ffmpeg"


class AudioStream:
    """Chunks of `chunk_s` seconds (the last may be shorter) of mono float32 at `rate`.

    After iteration, `end` says why it stopped: "complete", "limit" (max_s reached) or "corrupt"
    (the decoder failed after some audio; what came before is kept).
    """

    def __init__(self, blocks: Iterator[np.ndarray], info: AudioInfo, rate: int, chunk_s: float,
                 max_s: float, block_rate: int | None = None) -> None:
        self.info = info
        self.rate = rate
        self.end: str | None = None
        self.error: str | None = None
        self._blocks = blocks
        self._chunk = max(1, round(chunk_s * rate))
        self._max = int(max_s * rate)
        block_rate = block_rate or info.source_rate  # ffmpeg hands over samples already at `rate`
        self._resampler = soxr.ResampleStream(block_rate, rate, 1, dtype="float32", quality="HQ") \
            if block_rate != rate else None

    def __iter__(self) -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        held = emitted = 0
        for piece in self._resampled():
            room = self._max - emitted - held
            piece = piece[:room]
            pending.append(piece)
            held += len(piece)
            while held >= self._chunk:
                joined = np.concatenate(pending)
                chunk, rest = joined[: self._chunk], joined[self._chunk:]
                pending, held = [rest], len(rest)
                emitted += len(chunk)
                yield chunk
            if emitted + held >= self._max:
                self.end = "limit"
                self.close()
                break
        if held:
            yield np.concatenate(pending)
        self.end = self.end or "complete"

    def _resampled(self) -> Iterator[np.ndarray]:
        try:
            for block in self._blocks:
                mono = _mono(block)
                yield self._resampler.resample_chunk(mono) if self._resampler else mono
        except MediaError as exc:
            self.end, self.error = "corrupt", exc.detail
        if self._resampler is not None and self.end is None:
            yield self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


def open_audio(data: bytes, mime: str | None = None, chunk_s: float = 10.0, max_s: float = 3600.0,
               rate: int = ANALYSIS_RATE) -> AudioStream:
    """A chunked decoder for audio (or the audio track of a video) held in memory."""
    if not data:
        raise MediaError("empty", "the audio is empty (0 bytes)")
    if mime in _SNDFILE_TYPES or mime is None:
        try:
            return _sndfile(data, rate, chunk_s, max_s)
        except MediaError:
            if mime in _SNDFILE_TYPES and not shutil.which(_FFMPEG):
                raise
    return _ffmpeg(data, rate, chunk_s, max_s)


def read_audio(source: str | Path | bytes, rate: int = ANALYSIS_RATE, max_s: float = 3600.0) -> np.ndarray:
    """A whole (short) file or byte string as one mono float32 array at `rate`."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    from udfs.sniff import sniff

    stream = open_audio(data, sniff(data[:64]), chunk_s=60.0, max_s=max_s, rate=rate)
    chunks = list(stream)
    if stream.end == "corrupt" and not chunks:
        raise MediaError("corrupt", stream.error or "the audio could not be decoded")
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def ffmpeg_available() -> bool:
    return shutil.which(_FFMPEG) is not None and shutil.which(_FFPROBE) is not None


# --- libsndfile ---------------------------------------------------------------------------


def _sndfile(data: bytes, rate: int, chunk_s: float, max_s: float) -> AudioStream:
    try:
        sound = soundfile.SoundFile(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError("unsupported", f"libsndfile cannot open it: {exc}") from exc
    if sound.samplerate <= 0 or sound.channels <= 0:
        raise MediaError("corrupt", f"{sound.samplerate} Hz, {sound.channels} channels")
    duration = sound.frames / sound.samplerate if 0 < sound.frames < 2**62 else None
    info = AudioInfo(sound.subtype or sound.format, sound.samplerate, sound.channels, duration, "libsndfile")
    return AudioStream(_sndfile_blocks(sound), info, rate, chunk_s, max_s)


def _sndfile_blocks(sound: soundfile.SoundFile) -> Iterator[np.ndarray]:
    with sound:
        while True:
            try:
                block = sound.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError) as exc:
                raise MediaError("corrupt", f"decoding stopped: {exc}") from exc
            if not len(block):
                return
            yield block


# --- ffmpeg -------------------------------------------------------------------------------


def _ffmpeg(data: bytes, rate: int, chunk_s: float, max_s: float) -> AudioStream:
    if not ffmpeg_available():
        raise MediaError("unsupported", "this container needs ffmpeg, which is not installed")
    # A file, not a pipe: MP4s often keep their index at the end, which a pipe cannot seek to.
    handle, path = tempfile.mkstemp(prefix="trackius-audio-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    try:
        info = _probe(path)
    except MediaError:
        os.unlink(path)
        raise
    return AudioStream(_ffmpeg_blocks(path, rate), info, rate, chunk_s, max_s, block_rate=rate)


def _probe(path: str) -> AudioInfo:
    done = subprocess.run(
        [_FFPROBE, "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,sample_rate,channels:format=duration,format_name", "-of", "json", path],
        capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError("corrupt", f"ffprobe: {reason[-1] if reason else 'unreadable'}")
    found = json.loads(done.stdout or b"{}")
    streams = found.get("streams") or []
    if not streams:
        kind = found.get("format", {}).get("format_name", "the container")
        raise MediaError("no_audio", f"{kind} has no audio stream")
    stream = streams[0]
    duration = found.get("format", {}).get("duration")
    return AudioInfo(stream.get("codec_name", "unknown"), int(stream.get("sample_rate") or 0),
                     int(stream.get("channels") or 0), float(duration) if duration else None, "ffmpeg")


def _ffmpeg_blocks(path: str, rate: int) -> Iterator[np.ndarray]:
    command = [_FFMPEG, "-nostdin", "-v", "error", "-i", path, "-vn", "-ac", "1", "-ar", str(rate),
               "-f", "f32le", "pipe:1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while True:
            raw = process.stdout.read(rate * 4)  # one second of float32
            if not raw:
                break
            yield np.frombuffer(raw[: len(raw) // 4 * 4], dtype=np.float32)
        if process.wait(timeout=30) != 0:
            raise MediaError(*_ffmpeg_failure(process.stderr.read().decode(errors="replace")))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
        os.unlink(path)


def _ffmpeg_failure(stderr: str) -> tuple[str, str]:
    lines = [line for line in stderr.strip().splitlines() if line]
    last = lines[-1] if lines else "ffmpeg failed"
    if "decoder" in stderr.lower() and "not found" in stderr.lower() or "unsupported codec" in stderr.lower():
        return "unsupported", f"ffmpeg: {last}"
    return "corrupt", f"ffmpeg: {last}"


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in -1..1 as little-endian 16-bit PCM (what C decoders and printers read)."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def mono_float(audio: np.ndarray) -> np.ndarray:
    """1-D float32 in -1..1 from samples as the cores receive them: integer PCM scaled, the
    channels of [samples, channels] (or [channels, samples]: the short axis) averaged, NaN and
    infinities made safe."""
    samples = np.asarray(audio)
    if samples.ndim == 2:
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    elif samples.ndim != 1:
        raise MediaError("unsupported", f"audio must be 1-D or [samples, channels], not {samples.shape}")
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples / float(np.iinfo(samples.dtype).max + 1)
    samples = samples.astype(np.float32, copy=False)
    if np.isfinite(samples.sum()):  # the usual case: skip nan_to_num's copy
        return samples
    return np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)


def _mono(block: np.ndarray) -> np.ndarray:
    mono = block.mean(axis=1) if block.ndim == 2 else block
    return np.nan_to_num(np.ascontiguousarray(mono, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
