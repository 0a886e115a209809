"""The Flink execution environment every job uses: flink-conf/config.yaml plus Trackius settings.

The Python execution mode, bundle sizes and buffer timeout come from settings (the benchmark
compares them); everything else about the runtime lives in flink-conf/config.yaml.
"""

from __future__ import annotations

import argparse
import os
import site
import sys
import zlib
from pathlib import Path
from typing import Any

import yaml

from schemas.errors import ConfigError
from trackius.settings import REPO_ROOT, Settings


def flink_configuration(settings: Settings, restore_from: Path | None = None) -> dict[str, str]:
    conf_file = settings.flink_conf_dir / "config.yaml"
    try:
        conf = {k: str(v) for k, v in (yaml.safe_load(conf_file.read_text()) or {}).items()}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read Flink configuration {conf_file}: {exc}") from exc
    if not settings.connector_jar.is_file():
        raise ConfigError(f"Kafka connector jar {settings.connector_jar} is missing: run scripts/setup.sh")
    conf.update({
        "rest.port": str(settings.flink_rest_port),
        "pipeline.name": settings.job_name,
        "pipeline.jars": settings.connector_jar.as_uri(),
        "python.executable": sys.executable,
        # Thread mode embeds the interpreter that built the venv, which does not see the venv's
        # packages: hand it the venv's site-packages and the project root explicitly.
        "python.pythonpath": os.pathsep.join([*site.getsitepackages(), str(REPO_ROOT)]),
        "python.execution-mode": settings.python_execution_mode,
        "python.fn-execution.bundle.size": str(settings.python_bundle_size),
        "python.fn-execution.bundle.time": str(settings.python_bundle_time_ms),
        "execution.buffer-timeout.interval": f"{settings.buffer_timeout_ms}ms",
        "execution.checkpointing.interval": f"{settings.checkpoint_interval_ms}ms",
        "execution.checkpointing.dir": (settings.checkpoint_dir / settings.job_name).as_uri(),
    })
    if restore_from is not None:
        conf["execution.state-recovery.path"] = restore_from.as_uri()
    return conf


def execution_environment(settings: Settings, restore_from: Path | None = None) -> Any:
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    config = Configuration()
    for key, value in flink_configuration(settings, restore_from).items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(settings.parallelism)
    env.set_buffer_timeout(settings.buffer_timeout_ms)
    return env


def latest_checkpoint(settings: Settings) -> Path | None:
    """The newest completed checkpoint of this job (a chk-N folder holding _metadata), if any."""
    root = settings.checkpoint_dir / settings.job_name
    done = [meta.parent for meta in root.glob("*/chk-*/_metadata")]
    return max(done, key=lambda path: path.stat().st_mtime, default=None)


def restore_point(settings: Settings, argv: list[str] | None) -> Path | None:
    """--resume: the latest checkpoint; --restore-from PATH: that one; neither: a fresh start."""
    parser = argparse.ArgumentParser(description=f"Run the Flink job {settings.job_name}.")
    parser.add_argument("--resume", action="store_true", help="restore from the latest checkpoint")
    parser.add_argument("--restore-from", type=Path, help="restore from this checkpoint or savepoint")
    args = parser.parse_args(argv)
    restore = args.restore_from or (latest_checkpoint(settings) if args.resume else None)
    if restore:
        print(f"restoring from {restore}", flush=True)
    return restore


def kafka_stream(env: Any, source: Any, name: str) -> Any:
    """A Kafka source as a stream; the uid is its name, so offsets survive in checkpoints."""
    from pyflink.common import WatermarkStrategy

    return env.from_source(source, WatermarkStrategy.no_watermarks(), name).uid(name)


def named(stream: Any, name: str) -> Any:
    """Operator name as in the adapter's class; the uid in kebab case (savepoints depend on it)."""
    uid = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
    return stream.name(name).uid(uid)


def to_json(stream: Any, name: str) -> Any:
    """Records to JSON. Stateless, so no uid: PyFlink's operator fusion can give a fused
    operator a uid twice when the stream is consumed again (seen with execute_and_collect)."""
    from schemas.codec import encode
    from schemas.flink_types import json_type

    return stream.map(encode, json_type()).name(name)


def shard_of(key: str, shards: int) -> int:
    """A stable shard (Python's hash() differs per process; state must not move on restart)."""
    return zlib.crc32(key.encode()) % shards
