"""Running the analyze job: locally on a MiniCluster, or submitted to a Flink cluster.

`start_local` runs `python -m jobs.analyze` in its own process group (the PyFlink client and its
gateway JVM with the MiniCluster), so stopping it stops both. `submit` hands the same job to a
running cluster with `flink run -py`; `cluster_up` starts the standalone cluster that ships
inside the apache-flink package (web UI on settings.flink_rest_port).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pyflink

from schemas.errors import TrackiusError
from trackius.settings import REPO_ROOT, Settings

FLINK_HOME = Path(pyflink.__file__).parent


class JobError(TrackiusError):
    """The job did not start, or stopped unexpectedly."""


JOBS = ("analyze", "store")


def settings_for(settings: Settings, job: str) -> Settings:
    """The settings a local job runs with: the store job has its own name, and its own
    MiniCluster, which needs a REST port of its own."""
    from jobs.store import store_settings

    if job == "analyze":
        return settings
    return store_settings(settings).replace(flink_rest_port=settings.store_rest_port)


def start_all(settings: Settings, resume: bool = True, timeout_s: float = 120.0) -> dict[str, subprocess.Popen]:
    """Both jobs on local MiniClusters; returns once every task of both runs."""
    processes = {job: start_local(settings, job, resume) for job in JOBS}
    try:
        for job, process in processes.items():
            wait_running(settings_for(settings, job), process, timeout_s)
    except BaseException:
        stop_all(processes)
        raise
    return processes


def stop_all(processes: dict[str, subprocess.Popen], kill: bool = False) -> None:
    for process in processes.values():
        stop_local(process, kill=kill)


def start_local(settings: Settings, job: str = "analyze", resume: bool = True) -> subprocess.Popen:
    command = [sys.executable, "-m", f"jobs.{job}", *(["--resume"] if resume else [])]
    log_path = log_path_of(settings, settings_for(settings, job).job_name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    # The child reads its settings from the environment; only the REST port differs per job.
    env = {**os.environ, **settings.to_env(), "FLINK_CONF_DIR": str(settings.flink_conf_dir),
           "TRACKIUS_FLINK_REST_PORT": str(settings_for(settings, job).flink_rest_port)}
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_local(process: subprocess.Popen, kill: bool = False, timeout_s: float = 20.0) -> None:
    """Stop the job's process group: SIGTERM (or SIGKILL to simulate a crash), then wait."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def rest(settings: Settings, path: str) -> dict:
    url = f"http://127.0.0.1:{settings.flink_rest_port}{path}"
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def wait_running(settings: Settings, process: subprocess.Popen | None = None, timeout_s: float = 90.0) -> str:
    """The job id once every task of the job runs; JobError with the log tail if it cannot start."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise JobError(f"the job exited with {process.returncode}:\n{_log_tail(settings)}")
        job = _running_job(settings)
        if job is not None:
            return job
        time.sleep(0.5)
    raise JobError(f"the job was not running after {timeout_s:.0f} s:\n{_log_tail(settings)}")


def _running_job(settings: Settings) -> str | None:
    try:
        jobs = rest(settings, "/jobs/overview")["jobs"]
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None
    for job in jobs:
        tasks = job.get("tasks", {})
        if job["name"] == settings.job_name and job["state"] == "RUNNING" \
                and tasks.get("running") == tasks.get("total"):
            return job["jid"]
    return None


def log_path_of(settings: Settings, job_name: str) -> Path:
    return settings.state_dir / f"{job_name}.log"


def _log_tail(settings: Settings, lines: int = 40) -> str:
    path = log_path_of(settings, settings.job_name)
    if not path.exists():
        return "(no job log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def flink_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.to_env(), "FLINK_CONF_DIR": str(settings.flink_conf_dir),
            "FLINK_LOG_DIR": str(settings.state_dir / "flink-log"),
            "FLINK_LIB_DIR": str(cluster_lib(settings))}


def cluster_lib(settings: Settings) -> Path:
    """The cluster's lib/: the wheel's lib/ plus flink-python from opt/ (the wheel keeps it there,
    but a standalone cluster needs it to run Python operators) and the Kafka connector."""
    lib = settings.state_dir / "flink-lib"
    lib.mkdir(parents=True, exist_ok=True)
    wanted = [*(FLINK_HOME / "lib").glob("*.jar"), *(FLINK_HOME / "opt").glob("flink-python-*.jar"),
              settings.connector_jar]
    for jar in wanted:
        link = lib / jar.name
        if not link.exists():
            link.symlink_to(jar)
    return lib


def cluster_up(settings: Settings) -> None:
    (settings.state_dir / "flink-log").mkdir(parents=True, exist_ok=True)
    subprocess.run([str(FLINK_HOME / "bin" / "start-cluster.sh")], env=flink_env(settings), check=True)


def cluster_down(settings: Settings) -> None:
    subprocess.run([str(FLINK_HOME / "bin" / "stop-cluster.sh")], env=flink_env(settings), check=True)


def submit_command(settings: Settings, job: str) -> list[str]:
    python = sys.executable
    return [
        str(FLINK_HOME / "bin" / "flink"), "run", "--detached",
        "-m", f"127.0.0.1:{settings.flink_rest_port}",
        f"-Dpipeline.jars={settings.connector_jar.as_uri()}",
        "-py", str(REPO_ROOT / "jobs" / f"{job}.py"),
        "-pyfs", str(code_archive(settings)),
        "-pyexec", python, "-pyclientexec", python,
    ]


PACKAGES = ("schemas", "udfs", "connectors", "jobs", "trackius", "services")


def code_archive(settings: Settings) -> Path:
    """The project's packages in one zip for `-pyfs`: Flink puts it on the workers' PYTHONPATH.
    (Passing the package folders themselves would put their contents on the path, and
    connectors/kafka.py would shadow the kafka package.)"""
    archive = settings.state_dir / "trackius-code.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for package in PACKAGES:
            for path in sorted((REPO_ROOT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    bundle.write(path, path.relative_to(REPO_ROOT))
    return archive


def submit(settings: Settings) -> None:
    for job in JOBS:
        subprocess.run(submit_command(settings, job), env=flink_env(settings), cwd=REPO_ROOT, check=True)
