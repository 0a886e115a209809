"""Application settings, read once from the environment at the edge of every program.

Every host, port, topic name, path and tuning knob that the jobs, services and CLI use lives
here, so nothing else reads `os.environ`. Each field maps to one variable `TRACKIUS_<FIELD>`
(upper case); an unparsable value fails fast naming the variable.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Resolved like every path read from the environment, so a symlinked ../shared round-trips.
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


class SettingsError(ValueError):
    """A setting is missing or cannot be parsed; the message names the variable."""


@dataclass(frozen=True)
class Topics:
    """Kafka topic names (DESIGN.md: `<domain>.<what>.v<N>`)."""

    content_events: str = "content.events.v1"
    deadletter: str = "content.deadletter.v1"
    rules: str = "rules.v1"
    rule_acks: str = "rules.acks.v1"
    refs: str = "refs.v1"
    findings: str = "findings.v1"
    alerts: str = "alerts.v1"
    deliveries: str = "deliveries.v1"


@dataclass(frozen=True)
class Settings:
    # Where the local stack keeps jars, data, logs and pid files.
    state_dir: Path = REPO_ROOT / ".state"
    # Jars resolved from Maven Central by scripts/setup.sh (shared by every state directory).
    jars_dir: Path = REPO_ROOT / ".state" / "jars"
    # Real public data and models shared by the project (never copied into the repository).
    data_dir: Path = SHARED_DATA
    # NLTK packages (punkt_tab, the perceptron tagger, the binary NE chunker), read offline.
    nltk_data_dir: Path = SHARED_DATA / "nltk_data"
    # ONNX models from the shared data (vision, audio).
    model_dir: Path = SHARED_DATA / "models"
    # Models this project trains (the spam/scam classifier), each beside its manifest.
    project_model_dir: Path = REPO_ROOT / "models"
    # The OCR models, fetched by scripts/setup.sh (see scripts/fetch-ocr-models.sh).
    ocr_model_dir: Path = REPO_ROOT / "models" / "ocr"

    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: int = 19093
    kafka_partitions: int = 2
    # One limit for topics, producers and consumers, so an accepted record is always readable.
    max_message_bytes: int = 4 * 1024 * 1024

    cassandra_host: str = "127.0.0.1"
    cassandra_port: int = 19042
    cassandra_storage_port: int = 17000
    cassandra_keyspace: str = "trackius"

    fanout_host: str = "127.0.0.1"
    fanout_port: int = 8765
    # Alerts the fan-out keeps in memory for clients that resume.
    fanout_buffer: int = 100_000

    flink_rest_port: int = 8081
    # The store job's local MiniCluster needs a REST port of its own.
    store_rest_port: int = 8082
    flink_conf_dir: Path = REPO_ROOT / "flink-conf"
    parallelism: int = 1
    # "thread" runs Python functions inside the JVM; "process" in separate workers (bundles).
    python_execution_mode: str = "thread"
    python_bundle_size: int = 10
    python_bundle_time_ms: int = 2
    buffer_timeout_ms: int = 2
    checkpoint_interval_ms: int = 2000
    # Micro-batches of the analysis and the Cassandra writer: flushed at this size or age.
    batch_size: int = 64
    batch_max_wait_ms: int = 5
    # The store job is off the alert path: larger, slower batches cost far less CPU per row.
    store_batch_size: int = 500
    store_batch_max_wait_ms: int = 200
    # Texts longer than this are analysed truncated and flagged.
    max_text_chars: int = 20_000
    # Fusion: how long a content item waits for all its parts (processing time) before its rules
    # are decided with the missing parts flagged; per platform as "youtube=120000,twitch=60000".
    fusion_deadline_ms: int = 30_000
    fusion_deadlines: str = "youtube=180000,twitch=90000,tiktok=90000"
    # How long fusion keeps an incomplete item after its first record (late parts still revise
    # its alerts), and a complete one after its last part (duplicates within it change nothing).
    fusion_ttl_s: int = 3600
    fusion_linger_ms: int = 10_000
    # Windowed rules run on event time (published_at): how far out of order matches may arrive,
    # and after how long without matches a fusion subtask stops holding the watermark back.
    watermark_out_of_order_ms: int = 2000
    watermark_idle_ms: int = 1000
    # Stories: reposts join a story while it has been seen within this time.
    story_ttl_s: int = 24 * 3600

    # Media parts (images, videos): fetching. A fetch that takes longer than the timeout in all
    # (connect, headers and body together) fails; bodies above the cap are refused.
    media_fetch_timeout_ms: int = 5000
    media_max_bytes: int = 20 * 1024 * 1024
    media_fetch_workers: int = 8
    media_cache_items: int = 256
    # file:// URIs in content events are read only under these directories (":"-separated);
    # empty: the data directory and the system's temporary directory. "/" allows any file.
    media_file_roots: str = ""
    media_cache_bytes: int = 64 * 1024 * 1024
    # Decoding: images are downscaled to this longest side; above this many pixels (after early
    # JPEG downscaling) an image is refused as a decompression bomb.
    image_max_side: int = 1280
    image_max_pixels: int = 40_000_000
    # Visual analysis micro-batches (MobileNetV2 batches; the detectors run per image).
    media_batch_size: int = 8
    media_batch_max_wait_ms: int = 5
    # How often the operator collects finished parts from its background threads.
    media_poll_ms: int = 5
    # Known images: a part matches a reference when their perceptual hashes differ by at most
    # this many bits, or else their embeddings' cosine reaches this (raise it for very large
    # reference sets: ~1.4 % false matches per image at 100,000 references at 0.83, ~0.3 % at 0.84).
    image_match_max_hash_bits: int = 8
    image_match_min_cosine: float = 0.83
    # Videos: one frame per interval plus shot changes, at most this many frames per part.
    video_every_ms: int = 1000
    video_max_frames: int = 300
    # Audio (audio parts, and the sound of video parts unless audio_of_video is "off"): decoded
    # in chunks of audio_chunk_ms, analysed up to audio_max_seconds (longer is cut short).
    audio_chunk_ms: int = 10000
    audio_max_seconds: int = 3600
    audio_of_video: str = "on"
    # Known clips: each query is framed at this many phases of the analysis hop (3: best recall;
    # 1: a third of the matching cost, ~3 points less recall on short noisy excerpts; 0: 3 up
    # to 250 references, 1 beyond, so that 10 s of audio stays within its 100 ms budget).
    audio_match_phases: int = 0
    # Speech-to-text: "pocketsphinx" (English, from its wheel), "onnx" (a CTC model described by
    # speech_model_dir/manifest.json) or "none".
    speech_engine: str = "pocketsphinx"
    speech_model_dir: Path = REPO_ROOT / "models" / "speech"
    # Tracked reference images: "cassandra" loads them at start and follows refs.v1;
    # "none" starts with no references (topologies tested without a Cassandra).
    refs_store: str = "cassandra"
    job_name: str = "trackius-analyze"

    @property
    def file_roots(self) -> tuple[Path, ...]:
        if self.media_file_roots:
            return tuple(Path(root) for root in self.media_file_roots.split(":") if root)
        import tempfile

        return self.data_dir, Path(tempfile.gettempdir())

    @property
    def vision_manifest(self) -> Path:
        return self.project_model_dir / "vision" / "manifest.json"

    @property
    def audio_manifest(self) -> Path:
        return self.project_model_dir / "audio" / "manifest.json"

    def fusion_deadline_for(self, platform: str) -> int:
        """The fusion deadline (ms) of a platform's content."""
        return self._platform_deadlines.get(platform, self.fusion_deadline_ms)

    @property
    def longest_fusion_deadline_ms(self) -> int:
        return max([self.fusion_deadline_ms, *self._platform_deadlines.values()])

    @cached_property
    def _platform_deadlines(self) -> dict[str, int]:
        """TRACKIUS_FUSION_DEADLINES: "youtube=180000,twitch=90000"; a malformed entry fails fast."""
        found = {}
        for entry in filter(None, (item.strip() for item in self.fusion_deadlines.split(","))):
            name, _, value = entry.partition("=")
            if not value.strip().isdigit():
                raise SettingsError(f"TRACKIUS_FUSION_DEADLINES: {entry!r} is not platform=milliseconds")
            found[name.strip()] = int(value)
        return found

    @property
    def sound_of_video(self) -> bool:
        return self.audio_of_video.lower() not in ("off", "no", "false", "0")

    topics: Topics = field(default_factory=Topics)

    @property
    def connector_jar(self) -> Path:
        return self.jars_dir / "flink" / "flink-sql-connector-kafka-5.0.0-2.2.jar"

    @property
    def checkpoint_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def cassandra_contact(self) -> tuple[str, int]:
        return self.cassandra_host, self.cassandra_port

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            if f.name == "topics":
                continue
            raw = env.get(f"TRACKIUS_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(f"TRACKIUS_{f.name.upper()}", raw, f.type)
        if "data_dir" in values:  # the NLTK data and shared models live in the data directory
            values.setdefault("nltk_data_dir", values["data_dir"] / "nltk_data")
            values.setdefault("model_dir", values["data_dir"] / "models")
        topics = {}
        for f in fields(Topics):
            raw = env.get(f"TRACKIUS_TOPIC_{f.name.upper()}")
            if raw is not None:
                topics[f.name] = raw
        return cls(**values, topics=Topics(**topics))

    def to_env(self) -> dict[str, str]:
        """The TRACKIUS_* variables that make `from_env` rebuild these settings in a child process."""
        env = {f"TRACKIUS_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self) if f.name != "topics"}
        env.update({f"TRACKIUS_TOPIC_{f.name.upper()}": getattr(self.topics, f.name) for f in fields(Topics)})
        return env

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on loopback, held open together so that they all differ
    (for stacks of their own: tests, benchmarks)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _parse(name: str, raw: str, type_name: object) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw).expanduser().resolve()
        return raw
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from exc
