"""The local Cassandra 5.0 node: its cassandra.yaml, logback.xml, JVM command line and probe.

A single node on loopback, tuned to start fast on a small machine. It is a plain module that
`trackius.stack` drives (prepare, then spawn `command`, then poll `probe`); it never starts or
stops processes itself.
"""

from __future__ import annotations

from pathlib import Path

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable

from connectors.admin import cassandra_cluster
from trackius.settings import Settings

NAME = "cassandra"
START_TIMEOUT_S = 120.0
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"

# Cassandra's conf/jvm17-server.options: without these 5.0 dies at start-up on Java 17.
_EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.management/com.sun.jmx.remote.security",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc",
    "jdk.compiler/com.sun.tools.javac.file",
    "jdk.attach/sun.tools.attach",
)
_OPENS = (
    *(f"java.base/{package}" for package in (
        "java.lang.module", "jdk.internal.loader", "jdk.internal.ref", "jdk.internal.reflect",
        "jdk.internal.math", "jdk.internal.module", "jdk.internal.util.jar", "sun.nio.ch",
        "java.io", "java.lang.reflect", "java.lang", "java.util", "java.nio",
    )),
    "jdk.management/com.sun.management.internal",
    "jdk.compiler/com.sun.tools.javac",
)  # fmt: skip

# Tuned for a fast start on 2 cores: C1 only (C2 compiles cost more than they return in the
# first minute), a serial collector, no shared-memory perf file; JMX is left off, so the node
# opens only its storage and native ports.
_JVM_TUNING = (
    "-Xms768m",
    "-Xmx768m",
    "-Xss256k",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+PerfDisableSharedMem",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.superuser_setup_delay_ms=0",
    # No peers to tell about a shutdown: skip the 2 s announcement sleep.
    "-Dcassandra.shutdown_announce_in_ms=0",
)

_LOGBACK = """<configuration>
  <!-- Quiet: warnings, errors and the few start-up lines worth reading. -->
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{1} - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra.service.StorageService" level="INFO"/>
  <logger name="org.apache.cassandra.transport" level="INFO"/>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


def endpoint(settings: Settings) -> tuple[str, int]:
    """The native-protocol (CQL) host and port clients connect to."""
    return settings.cassandra_host, settings.cassandra_port


def data_dir(home: Path) -> Path:
    """The node's data directory; its path also identifies the node in `probe`."""
    return home / "data" / "data"


def cassandra_yaml(settings: Settings, home: Path) -> str:
    """A minimal single-node cassandra.yaml for 5.0, which rejects unknown keys."""
    host, storage = settings.cassandra_host, settings.cassandra_storage_port
    d = home / "data"
    return f"""# Written by trackius.stack on every start; edits are overwritten.
cluster_name: trackius-local
num_tokens: 1
# One fixed token: no "picking random token" warning, the same ring on every fresh start.
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{host}:{storage}"
listen_address: {host}
rpc_address: {host}
storage_port: {storage}
ssl_storage_port: {storage + 1}
native_transport_port: {settings.cassandra_port}
start_native_transport: true
data_file_directories: ["{data_dir(home)}"]
commitlog_directory: "{d / "commitlog"}"
saved_caches_directory: "{d / "saved_caches"}"
hints_directory: "{d / "hints"}"
cdc_raw_directory: "{d / "cdc_raw"}"
commitlog_sync: periodic
commitlog_sync_period: 10s
commitlog_segment_size: 5MiB
auto_snapshot: false
memtable_allocation_type: heap_buffers
disk_access_mode: standard
concurrent_compactors: 1
storage_compatibility_mode: NONE
"""


def prepare(settings: Settings, home: Path, java: str) -> list[str]:
    """Write cassandra.yaml and logback.xml (every start, so settings changes apply)."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "triggers").mkdir(exist_ok=True)  # absent, the node warns every minute
    (home / "cassandra.yaml").write_text(cassandra_yaml(settings, home))
    (home / "logback.xml").write_text(_LOGBACK)
    return command(settings, home, java)


def command(settings: Settings, home: Path, java: str) -> list[str]:
    """The JVM command line that runs the node in the foreground."""
    lib = settings.jars_dir / "cassandra"
    return [
        java,
        *_JVM_TUNING,
        f"-javaagent:{lib / 'jamm-0.4.0.jar'}",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
        *(f"--add-exports={m}=ALL-UNNAMED" for m in _EXPORTS),
        *(f"--add-opens={m}=ALL-UNNAMED" for m in _OPENS),
        f"-Dcassandra.config=file://{home / 'cassandra.yaml'}",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.storagedir={home / 'data'}",
        f"-Dcassandra.logdir={home}",
        f"-Dcassandra.triggers_dir={home / 'triggers'}",
        f"-Dlogback.configurationFile=file://{home / 'logback.xml'}",
        "-cp",
        f"{lib}/*",
        MAIN_CLASS,
    ]


def probe(settings: Settings, home: Path, timeout: float = 2.0) -> tuple[bool, str]:
    """Whether *this* node answers CQL (not another one on the same port), and a detail line.

    Called once the port accepts connections, so the driver does not log refused ones.
    """
    cluster = cassandra_cluster(settings, timeout)
    try:
        session = cluster.connect()
        release = session.execute("SELECT release_version FROM system.local").one()[0]
        # Virtual table of the node's effective settings: its data directory identifies it.
        dirs = session.execute(
            "SELECT value FROM system_views.settings WHERE name = 'data_file_directories'"
        ).one()
    except (NoHostAvailable, DriverException, OSError) as exc:
        return False, f"no CQL answer: {type(exc).__name__}: {exc}"
    finally:
        cluster.shutdown()
    if dirs is None or str(data_dir(home)) not in dirs[0]:
        return False, "another Cassandra node answers on this port"
    return True, f"Cassandra {release}"
