"""The local stack: a Kafka broker and a Cassandra node run as detached JVMs on loopback.

`up` starts whatever is not running, waits until each server answers, then creates the topics
and applies the CQL migrations; `down` stops them; `status` reports. Everything a server owns
(config, data, log, pid file) lives under `<state_dir>/<server>/`, so two stacks with different
state directories and ports run side by side (the tests start their own next to the demo one).
The servers outlive the command that started them: the pid file is the link back.

How each server is configured, started and probed lives in `stack_kafka` and `stack_cassandra`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from connectors import admin
from trackius import stack_cassandra, stack_kafka
from trackius.settings import Settings

Log = Callable[[str], object]


class Server(Protocol):
    """What a server module (`stack_kafka`, `stack_cassandra`) provides to the manager."""

    NAME: str
    START_TIMEOUT_S: float

    def endpoint(self, settings: Settings) -> tuple[str, int]: ...

    def prepare(self, settings: Settings, home: Path, java: str) -> list[str]: ...

    def probe(self, settings: Settings, home: Path, timeout: float = ...) -> tuple[bool, str]: ...


# Cassandra is spawned first: it takes longest, and Kafka's format and start overlap with it.
SERVERS: tuple[Server, ...] = (stack_cassandra, stack_kafka)
# Status and health checks report in the order clients depend on them.
_REPORT_ORDER: tuple[Server, ...] = (stack_kafka, stack_cassandra)
STOP_TIMEOUT_S = 30.0
_TAIL_LINES = 40
_POLL_S = 0.25
# Popen handles of servers this process started, so their exit is seen (and reaped) at once.
_children: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A server could not be started or stopped; the message ends with the tail of its log."""


@dataclass(frozen=True)
class ServerStatus:
    """What `status` knows about one server."""

    name: str
    running: bool
    pid: int | None
    address: str
    healthy: bool
    detail: str


def home(settings: Settings, server: Server) -> Path:
    """The directory holding one server's config, data, log and pid file (an absolute path:
    it goes into config files and identifies the server's process)."""
    return settings.state_dir.resolve() / server.NAME


def log_path(settings: Settings, server: Server) -> Path:
    """The file a server's stdout and stderr go to (the previous run's is kept as `.1`)."""
    return home(settings, server) / f"{server.NAME}.log"


def _pid_path(settings: Settings, server: Server) -> Path:
    return home(settings, server) / f"{server.NAME}.pid"


def _address(settings: Settings, server: Server) -> str:
    host, port = server.endpoint(settings)
    return f"{host}:{port}"


# -- processes -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None  # also reaps it, so no zombie lingers
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and `_is_ours` will reject it
    stat = Path(f"/proc/{pid}/stat")
    # An exited child of another process stays a zombie until reaped: that is not running.
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _is_ours(pid: int, server_home: Path) -> bool:
    """Guards against a recycled pid: our servers carry their home directory on the command line."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():
        return True  # no procfs (not Linux): trust the pid file
    try:
        return f"{server_home}{os.sep}".encode() in cmdline.read_bytes()
    except OSError:
        return False


def running_pid(settings: Settings, server: Server) -> int | None:
    """The pid of the server if it runs; a stale pid file (process gone) gives None."""
    try:
        pid = int(_pid_path(settings, server).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _alive(pid) and _is_ours(pid, home(settings, server)):
        return pid
    return None


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("no `java` on PATH: install a JDK 17 (scripts/setup.sh does)")
    return java


def _spawn(settings: Settings, server: Server, log: Log) -> int:
    """Write the server's config and start it detached; returns its pid."""
    jars = settings.jars_dir / server.NAME
    if not any(jars.glob("*.jar")):
        raise StackError(f"no {server.NAME} jars under {jars}: run scripts/setup.sh")
    server_home = home(settings, server)
    server_home.mkdir(parents=True, exist_ok=True)
    try:
        command = server.prepare(settings, server_home, _java())
    except subprocess.CalledProcessError as exc:
        output = "\n".join((exc.stdout or "", exc.stderr or "")).splitlines()
        raise StackError(
            f"{server.NAME}: preparing storage failed ({exc})\n" + _tail_text(output)
        ) from exc
    log_file = log_path(settings, server)
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))
    with log_file.open("wb") as out:
        # A new session: the server survives the CLI and its terminal's Ctrl-C.
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=server_home,
            start_new_session=True,
        )
    _children[child.pid] = child
    _pid_path(settings, server).write_text(f"{child.pid}\n")
    log(f"{server.NAME}: started pid {child.pid} on {_address(settings, server)} (log {log_file})")
    return child.pid


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _probe(settings: Settings, server: Server) -> tuple[bool, str]:
    if not _port_open(*server.endpoint(settings)):
        return False, f"nothing listens on {_address(settings, server)}"
    return server.probe(settings, home(settings, server))


def _wait_healthy(settings: Settings, server: Server, pid: int, log: Log, started: float) -> None:
    """Poll until the server answers; raise with its log tail if it exits or time runs out."""
    deadline = started + server.START_TIMEOUT_S
    while True:
        if not _alive(pid):
            _pid_path(settings, server).unlink(missing_ok=True)
            _fail(settings, server, f"exited during start-up (pid {pid})")
        healthy, detail = _probe(settings, server)
        if healthy:
            log(f"{server.NAME}: healthy after {time.monotonic() - started:.1f} s ({detail})")
            return
        if time.monotonic() > deadline:
            _fail(settings, server, f"not healthy after {server.START_TIMEOUT_S:.0f} s: {detail}")
        time.sleep(_POLL_S)


def _tail_text(lines: list[str]) -> str:
    return "\n".join(lines[-_TAIL_LINES:])


def _fail(settings: Settings, server: Server, reason: str) -> None:
    path = log_path(settings, server)
    try:
        tail = _tail_text(path.read_text(errors="replace").splitlines())
    except FileNotFoundError:
        tail = "(no log written)"
    raise StackError(f"{server.NAME} {reason}\n--- last {_TAIL_LINES} lines of {path} ---\n{tail}")


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """One `up` or `down` at a time per state directory, so two commands never double-start."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# -- the public commands ---------------------------------------------------------------------


def start(settings: Settings, name: str, log: Log = print) -> None:
    """Start one server by name ("kafka" or "cassandra") if needed and wait until it answers."""
    server = _server(name)
    with _locked(settings):
        started = time.monotonic()
        pid = running_pid(settings, server) or _spawn(settings, server, log)
        _wait_healthy(settings, server, pid, log, started)


def up(settings: Settings, log: Log = print) -> None:
    """Start what is not running, wait for health, then create topics and apply migrations."""
    with _locked(settings):
        pids, started = {}, {}
        for server in SERVERS:
            started[server.NAME] = time.monotonic()
            pid = running_pid(settings, server)
            if pid is not None:
                log(f"{server.NAME}: already running (pid {pid})")
            pids[server.NAME] = pid or _spawn(settings, server, log)
        for server in _REPORT_ORDER:
            _wait_healthy(settings, server, pids[server.NAME], log, started[server.NAME])
    created = admin.ensure_topics(settings)
    log(f"kafka: created topics {', '.join(created)}" if created else "kafka: topics present")
    applied = admin.migrate(settings)
    log(f"cassandra: applied migrations {applied}" if applied else "cassandra: schema up to date")


def down(settings: Settings, log: Log = print) -> None:
    """SIGTERM every running server, SIGKILL any still alive after STOP_TIMEOUT_S."""
    with _locked(settings):
        stopping = {}
        for server in SERVERS:
            pid = running_pid(settings, server)
            if pid is not None:
                _signal(pid, signal.SIGTERM)
                stopping[server.NAME] = pid
        started = time.monotonic()
        _await_exit(stopping, STOP_TIMEOUT_S)
        for name, pid in stopping.items():
            if _alive(pid):
                log(f"{name}: still alive after {STOP_TIMEOUT_S:.0f} s, sending SIGKILL")
                _signal(pid, signal.SIGKILL)
        if not _await_exit(stopping, 10.0):
            raise StackError(f"could not stop {sorted(stopping)}")
        for server in SERVERS:
            _pid_path(settings, server).unlink(missing_ok=True)
    if stopping:
        names = ", ".join(f"{name} (pid {pid})" for name, pid in stopping.items())
        log(f"stopped {names} in {time.monotonic() - started:.1f} s")


def _signal(pid: int, sig: signal.Signals) -> None:
    # The server leads its own process group (start_new_session); it may have exited between
    # the liveness check and the signal, which is the goal anyway.
    with suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _await_exit(pids: dict[str, int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids.values()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def status(settings: Settings) -> list[ServerStatus]:
    """One ServerStatus per server, probing health of those that run."""
    report = []
    for server in _REPORT_ORDER:
        pid = running_pid(settings, server)
        if pid is None:
            stale = _pid_path(settings, server).exists()
            healthy, detail = False, "not running" + (" (stale pid file)" if stale else "")
        else:
            healthy, detail = _probe(settings, server)
        report.append(
            ServerStatus(
                server.NAME, pid is not None, pid, _address(settings, server), healthy, detail
            )
        )
    return report


def format_status(statuses: list[ServerStatus]) -> str:
    """A small table for humans, one line per server."""
    lines = []
    for s in statuses:
        state = ("healthy" if s.healthy else "unhealthy") if s.running else "stopped"
        pid = f"pid {s.pid}" if s.pid is not None else "-"
        lines.append(f"{s.name:<10} {state:<10} {pid:<11} {s.address:<22} {s.detail}")
    return "\n".join(lines)


def _server(name: str) -> Server:
    for server in SERVERS:
        if name == server.NAME:
            return server
    raise ValueError(f"unknown server {name!r}; expected one of {[s.NAME for s in SERVERS]}")
