"""Tests of udfs/audio.py: every container and rate decodes to mono 16 kHz in chunks, long audio
in bounded memory up to its limit, and bad bytes become precise MediaErrors."""

from __future__ import annotations

import io
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from schemas.errors import MediaError
from trackius.settings import SHARED_DATA
from udfs.audio import ANALYSIS_RATE, open_audio, read_audio
from udfs.sniff import sniff

JFK = SHARED_DATA / "audio" / "speech" / "jfk.flac"
SILENT_VIDEO = SHARED_DATA / "video" / "bottle-detection.mp4"


def ffmpeg(tmp: Path, name: str, *args: str) -> bytes:
    """Media made by ffmpeg from its test sources (lavfi), as bytes."""
    out = tmp / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True, timeout=120)
    return out.read_bytes()


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype=subtype)
    return out.getvalue()


def decode(data: bytes, **options: float) -> tuple[np.ndarray, object]:
    stream = open_audio(data, sniff(data[:64]), **options)
    chunks = list(stream)
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), stream


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 192000])
def test_any_rate_becomes_16_khz_with_its_pitch(rate: int) -> None:
    """8 kHz to 192 kHz: the duration and a 440 Hz tone's frequency survive resampling."""
    samples, stream = decode(wav(tone(3.0, rate), rate))
    assert stream.info.source_rate == rate and stream.end == "complete"
    assert abs(len(samples) - 3 * ANALYSIS_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(samples[ANALYSIS_RATE:2 * ANALYSIS_RATE]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 Hz bins over one second


def test_stereo_flac_is_averaged_to_mono_in_chunks() -> None:
    """The shared 44.1 kHz stereo FLAC: 11 s as one 10 s chunk and a 1 s rest."""
    stream = open_audio(JFK.read_bytes(), "audio/flac", chunk_s=10.0)
    sizes = [len(chunk) for chunk in stream]
    assert sizes == [160000, 16000]
    assert stream.info.channels == 2 and stream.info.decoder == "libsndfile"


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_lossy_formats_decode_through_libsndfile(fmt: str) -> None:
    """OGG Vorbis and MP3 bytes decode, at about the length written."""
    out = io.BytesIO()
    soundfile.write(out, tone(4.0, 22050), 22050, format=fmt)
    samples, stream = decode(out.getvalue())
    assert stream.info.decoder == "libsndfile"
    assert abs(len(samples) / ANALYSIS_RATE - 4.0) < 0.1


def test_sound_of_an_mp4_comes_through_ffmpeg(tmp_path: Path) -> None:
    """AAC in MP4 (with a video track) decodes through ffmpeg, with the container's duration."""
    data = ffmpeg(tmp_path, "clip.mp4", "-f", "lavfi", "-i", "sine=frequency=300:duration=6",
                  "-f", "lavfi", "-i", "testsrc=duration=6:size=64x48:rate=5", "-c:a", "aac", "-c:v", "mpeg4",
                  "-shortest")
    samples, stream = decode(data)
    assert stream.info.decoder == "ffmpeg" and stream.info.codec == "aac"
    assert abs(len(samples) / ANALYSIS_RATE - 6.0) < 0.2
    assert stream.info.duration_s == pytest.approx(6.0, abs=0.2)


def test_a_video_without_sound_says_so() -> None:
    """An MP4 with only a video track is `no_audio`, naming the container."""
    with pytest.raises(MediaError) as error:
        open_audio(SILENT_VIDEO.read_bytes(), "video/mp4")
    assert error.value.code == "no_audio" and "mp4" in error.value.detail


def test_empty_and_garbage_bytes() -> None:
    """Zero bytes are `empty`; bytes no decoder understands are refused, not half-read."""
    with pytest.raises(MediaError) as empty:
        open_audio(b"", "audio/wav")
    assert empty.value.code == "empty"
    with pytest.raises(MediaError) as garbage:
        open_audio(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 4, "audio/wav")
    assert garbage.value.code in ("corrupt", "unsupported")


def test_a_truncated_file_keeps_what_came_before(tmp_path: Path) -> None:
    """A FLAC cut in the middle decodes up to the cut, or stops as corrupt without a crash."""
    data = JFK.read_bytes()
    samples, stream = decode(data[: len(data) // 2])
    assert stream.end in ("complete", "corrupt")
    assert 3.0 < len(samples) / ANALYSIS_RATE < 6.5


def test_unsupported_codec_is_named(tmp_path: Path) -> None:
    """A WAV declaring a codec nothing here decodes is `unsupported` or `corrupt`, with a message."""
    data = bytearray(wav(tone(1.0, 8000), 8000))
    data[20:22] = (0x1234).to_bytes(2, "little")  # the format tag: an unknown codec
    with pytest.raises(MediaError) as error:
        read_audio(bytes(data))
    assert error.value.code in ("unsupported", "corrupt") and error.value.detail


def test_three_hours_decode_in_bounded_memory_up_to_the_limit(tmp_path: Path) -> None:
    """A three-hour FLAC is read chunk by chunk: a few MB at most, stopped at max_s and said so."""
    data = ffmpeg(tmp_path, "long.flac", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "10800",
                  "-c:a", "flac")
    tracemalloc.start()
    try:
        stream = open_audio(data, "audio/flac", chunk_s=10.0, max_s=3600.0)
        seconds = sum(len(chunk) for chunk in stream) / ANALYSIS_RATE
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds == 3600.0 and stream.end == "limit"
    assert peak < 16 * 1024 * 1024


def test_read_audio_of_a_file_matches_the_chunks() -> None:
    """read_audio gives the concatenation of the chunked decode."""
    whole = read_audio(JFK)
    chunked, _ = decode(JFK.read_bytes(), chunk_s=3.0)
    np.testing.assert_array_equal(whole, chunked)
