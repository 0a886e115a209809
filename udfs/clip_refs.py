"""The stored signature of a tracked audio clip: its landmark fingerprint and its Chromaprint,
computed once when the clip is added (`trackius refs add --kind audio`) and kept in Cassandra
beside the file, so every job subtask indexes it without decoding the audio again.

Layout: b"TKA1", the landmark bytes' length (uint32, little-endian), the landmark bytes
(udfs.landmarks' own versioned format), then the Chromaprint words (uint32, little-endian).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from schemas.errors import MediaError
from udfs.audio import ANALYSIS_RATE, read_audio
from udfs.chroma import chroma_fingerprint
from udfs.landmarks import (
    FINGERPRINT_VERSION,
    Landmarks,
    fingerprint,
    landmarks_from_bytes,
    landmarks_to_bytes,
)

MAGIC = b"TKA1"
CLIP_SIGNATURE_VERSION = f"{FINGERPRINT_VERSION}+chromaprint1"


def sign_clip(data: bytes, max_s: float = 1800.0) -> bytes:
    """Decode a reference file and fingerprint it both ways."""
    samples = read_audio(data, ANALYSIS_RATE, max_s=max_s)
    if len(samples) < ANALYSIS_RATE // 2:
        raise MediaError("too_short", f"a reference clip needs at least 0.5 s of audio, not {len(samples) / ANALYSIS_RATE:.2f} s")
    return clip_signature_to_bytes(fingerprint(samples, ANALYSIS_RATE), chroma_fingerprint(samples, ANALYSIS_RATE))


def clip_signer(max_s: float = 1800.0) -> Callable[[str, bytes], tuple[bytes, str]]:
    """signer(kind, media) -> (signature, version), as connectors/refs.py wants it."""
    return lambda kind, media: (sign_clip(media, max_s), CLIP_SIGNATURE_VERSION)


def clip_signature_to_bytes(marks: Landmarks, words: np.ndarray) -> bytes:
    packed = landmarks_to_bytes(marks)
    return MAGIC + struct.pack("<I", len(packed)) + packed + np.asarray(words, "<u4").tobytes()


def clip_signature_from_bytes(data: bytes) -> tuple[Landmarks, np.ndarray]:
    if data[:4] != MAGIC or len(data) < 8:
        raise MediaError("corrupt", f"not an audio clip signature (starts {data[:8]!r})")
    (size,) = struct.unpack("<I", data[4:8])
    if 8 + size > len(data) or (len(data) - 8 - size) % 4:
        raise MediaError("corrupt", "audio clip signature is truncated")
    marks = landmarks_from_bytes(data[8:8 + size])
    return marks, np.frombuffer(data[8 + size:], dtype="<u4").astype(np.uint32)
