"""The local Kafka 4.1 broker (KRaft, one combined broker/controller node): config, format, probe.

A plain module that `trackius.stack` drives (prepare, then spawn the command, then poll `probe`);
it never starts or stops the broker itself.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from trackius.settings import Settings

NAME = "kafka"
START_TIMEOUT_S = 60.0
_FORMAT_TIMEOUT_S = 60.0

# A serial collector and C1 only: the broker starts in ~2 s on 2 cores and the test loads are
# far below where C2 would pay off. No shared-memory perf file in /tmp.
_JVM_TUNING = (
    "-Xms512m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+PerfDisableSharedMem",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
    # slf4j-simple is the backend: warnings only, plus the line that says the broker is up.
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
    "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
)


def endpoint(settings: Settings) -> tuple[str, int]:
    """The bootstrap host and port clients connect to."""
    host, _, port = settings.kafka_bootstrap.rpartition(":")
    return host, int(port)


def data_dir(home: Path) -> Path:
    """Where the broker keeps its log segments and the KRaft metadata log."""
    return home / "data"


def server_properties(settings: Settings, home: Path) -> str:
    """server.properties for a single combined broker/controller on loopback."""
    host, port = endpoint(settings)
    ctl = settings.kafka_controller_port
    one = "1"  # a single node: every internal topic has one replica and an ISR of one
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{ctl}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctl}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir(home)),
        "offsets.topic.replication.factor": one,
        # One partition each: coordinators spread over partitions buy nothing on one broker,
        # and 50 offsets partitions would slow the first consumer-group join.
        "offsets.topic.num.partitions": one,
        "transaction.state.log.replication.factor": one,
        "transaction.state.log.min.isr": one,
        "transaction.state.log.num.partitions": one,
        "share.coordinator.state.topic.replication.factor": one,
        "share.coordinator.state.topic.min.isr": one,
        "share.coordinator.state.topic.num.partitions": one,
        "default.replication.factor": one,
        "min.insync.replicas": one,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "message.max.bytes": str(settings.max_message_bytes),
        "replica.fetch.max.bytes": str(settings.max_message_bytes),
    }
    lines = ["# Written by trackius.stack on every start; edits are overwritten."]
    return "\n".join(lines + [f"{k}={v}" for k, v in props.items()]) + "\n"


def random_cluster_id() -> str:
    """A cluster id as `StorageTool random-uuid` makes one: URL-safe base64 of a UUID, unpadded.

    Made here rather than by the tool to save one JVM start (~1 s); like Kafka's Uuid we avoid
    ids that start with '-', which command lines would read as an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def cluster_id(home: Path) -> str | None:
    """The cluster id that `format` wrote, or None before the storage is formatted."""
    meta = data_dir(home) / "meta.properties"
    if not meta.exists():
        return None
    for line in meta.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def prepare(settings: Settings, home: Path, java: str) -> list[str]:
    """Write server.properties, format the storage once, and return the broker command line.

    Raises subprocess.CalledProcessError (with the tool's output) when formatting fails.
    """
    config = home / "server.properties"
    config.write_text(server_properties(settings, home))
    if cluster_id(home) is None:
        subprocess.run(
            [
                java,
                *_JVM_TUNING,
                "-cp",
                _classpath(settings),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                random_cluster_id(),
                "-c",
                str(config),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=_FORMAT_TIMEOUT_S,
        )
    return [java, *_JVM_TUNING, "-cp", _classpath(settings), "kafka.Kafka", str(config)]


def _classpath(settings: Settings) -> str:
    return f"{settings.jars_dir / 'kafka'}/*"


def probe(settings: Settings, home: Path, timeout: float = 2.0) -> tuple[bool, str]:
    """Whether *this* broker answers metadata requests (checked by cluster id), and a detail.

    Called once the port accepts connections, so a stopped broker costs no bootstrap timeout.
    """
    ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id="trackius-stack-probe",
            bootstrap_timeout_ms=ms,
            request_timeout_ms=ms,
        )
        try:
            topics = admin.list_topics()
            answered = admin.describe_cluster()["cluster_id"]
        finally:
            admin.close()
    except KafkaError as exc:
        return False, f"no metadata answer: {type(exc).__name__}"
    if answered != cluster_id(home):
        return False, f"another Kafka cluster ({answered}) answers on this port"
    return True, f"{len(topics)} topics"
