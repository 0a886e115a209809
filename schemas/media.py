"""MediaFindings: what the visual or audio analysis found in one image, video or audio part
(findings.v1, Cassandra findings_by_content, one row per part). The audio track of a video part
reports as a part of its own, kind "audio", with the id `audio_part_of(video part id)`.

Boxes are (x1, y1, x2, y2) in the pixels of the image as published, after its EXIF orientation.
A part that cannot be fetched or decoded still gets findings: `status` "error" and a `failure`
naming the stage and the reason, so the rest of the content keeps its analysis and nothing is lost.
A long video reports progressively: findings with status "partial" while frames are analysed,
then one with status "ok" (or "error" when it stopped early), each replacing the last in storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.codec import choices, decode, encode

SCHEMA_VERSION = 1
STATUSES = ("ok", "partial", "error")
# Flags a part can carry: why its analysis is partial or what is unusual about it.
FLAGS = (
    "downscaled",  # decoded below its published size (large images; early JPEG downscaling)
    "video_cut_short",  # decoding stopped before the end (corrupt data, the frame or time limit)
    "ocr_pending",  # its text is being read; the text findings follow under the same part_id
    "audio_cut_short",  # audio decoding stopped early (corrupt data, the length limit)
    "no_audio_track",  # the audio of a video part that has none
)


@dataclass(frozen=True)
class Failure:
    stage: str = field(metadata=choices("fetch", "decode", "analyse"))
    code: str  # MediaError codes: timeout, too_large, http_status, not_media, corrupt, bomb, ...
    message: str


@dataclass(frozen=True)
class Detection:
    label: str  # COCO name for objects, "face" for faces
    score: float
    box: tuple[float, ...]  # x1, y1, x2, y2


@dataclass(frozen=True)
class SceneLabel:
    label: str  # ImageNet class
    score: float


@dataclass(frozen=True)
class KnownImage:
    """A tracked reference image this part shows (resized, cropped, re-encoded or mirrored)."""

    ref_id: str
    name: str
    method: str  # which signature decided: a hash, its mirror, or the embedding
    distance: int | None = None  # Hamming distance of the perceptual hashes
    similarity: float | None = None  # cosine of the embeddings
    t_ms: int | None = None  # for video: when it was seen first


@dataclass(frozen=True)
class VideoObject:
    """One label across the sampled frames of a video part."""

    label: str
    first_ms: int
    last_ms: int
    peak_score: float
    peak_ms: int
    frames: int  # sampled frames it was seen in
    peak_count: int = 1  # the most of it in one sampled frame


@dataclass(frozen=True)
class VideoSummary:
    frames_sampled: int
    analysed_ms: int  # video time covered so far
    objects: tuple[VideoObject, ...] = ()
    faces_peak: int = 0  # most faces in one sampled frame
    labels: tuple[SceneLabel, ...] = ()  # top scene labels across frames (peak score)


@dataclass(frozen=True)
class KnownClip:
    """A tracked reference clip heard in this part."""

    ref_id: str
    name: str
    method: str = field(metadata=choices("landmarks", "chromaprint"))
    score: float  # landmarks: share of the query's hashes that agree; chromaprint: 1 - bit error rate
    offset_s: float  # where, in the reference, the part's audio at `at_s` sits
    at_s: float  # when it was first heard in the part
    speed: float = 1.0  # playback speed relative to the reference


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SoundSpan:
    label: str = field(metadata=choices("music", "speech", "silence", "other"))
    start_s: float
    end_s: float


@dataclass(frozen=True)
class LoudSound:
    at_s: float
    peak_db: float
    jump_db: float  # above the background level just before


@dataclass(frozen=True)
class Keyword:
    """A tracked phrase spotted in the speech."""

    phrase: str
    start_s: float
    end_s: float
    score: float


@dataclass(frozen=True)
class AudioSummary:
    analysed_s: float  # audio time covered so far
    duration_s: float | None  # as the container declares it
    codec: str
    source_rate: int
    channels: int
    speech_share: float = 0.0
    speech: tuple[Segment, ...] = ()  # the first MAX_SEGMENTS speech segments
    clips: tuple[KnownClip, ...] = ()
    transcript: str = ""
    keywords: tuple[Keyword, ...] = ()
    sounds: tuple[SoundSpan, ...] = ()  # per-second classes, runs merged
    sound_shares: dict[str, float] = field(default_factory=dict)
    loudness_db: float | None = None
    peak_db: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    loud_sounds: tuple[LoudSound, ...] = ()


@dataclass(frozen=True)
class MediaFindings:
    content_key: str
    part_id: str
    kind: str = field(metadata=choices("image", "video", "audio"))
    uri: str
    status: str = field(metadata=choices(*STATUSES))
    failure: Failure | None = None
    mime: str | None = None
    sha256: str | None = None
    phash: str | None = None  # images: 64-bit DCT perceptual hash, 16 hex digits (None when flat)
    width: int | None = None  # as published (after EXIF orientation)
    height: int | None = None
    objects: tuple[Detection, ...] = ()  # images; for videos see video.objects
    faces: tuple[Detection, ...] = ()
    labels: tuple[SceneLabel, ...] = ()
    matches: tuple[KnownImage, ...] = ()
    video: VideoSummary | None = None
    audio: AudioSummary | None = None
    flags: tuple[str, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)  # fetch, decode, analyse
    collected_at: int = 0  # epoch ms, copied from the event
    analysed_at: int = 0  # epoch ms
    schema_version: int = SCHEMA_VERSION

    @property
    def modality(self) -> str:
        return self.kind


def decode_media_findings(raw: str | bytes | dict) -> MediaFindings:
    return decode(MediaFindings, raw)


def media_row(findings: MediaFindings, as_json: str | None = None) -> tuple:
    """Values for schemas.findings.CQL_UPSERT_FINDINGS: the same table as text, one row per part."""
    return (findings.content_key, findings.part_id, findings.kind, findings.collected_at,
            findings.analysed_at, as_json if as_json is not None else encode(findings))
