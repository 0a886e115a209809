"""docker-compose.yml and deploy/Dockerfile: valid Compose, and the same system as the local stack.

No Docker engine runs here, so the compose file is checked statically: against the official
Compose Specification JSON schema (fetched once from PyPI by scripts/fetch-compose-schema.sh and
cached under .state/), and for consistency with trackius/settings.py, requirements.txt and the
Maven poms the local stack is built from.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import fields
from pathlib import Path

import jsonschema
import pytest
import yaml

from trackius.settings import REPO_ROOT, Settings, Topics

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
FETCH_SCHEMA = REPO_ROOT / "scripts" / "fetch-compose-schema.sh"
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
MIB4 = 4 * 1024 * 1024


# -- helpers ---------------------------------------------------------------------------------

def fetch_compose_schema(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs the fetch script (no network once cached); returns the finished process."""
    return subprocess.run(
        ["bash", str(FETCH_SCHEMA)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )


def compose_schema() -> dict:
    """The Compose Specification schema, or a test failure that says why it is unavailable."""
    proc = fetch_compose_schema()
    path = Path(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    if proc.returncode != 0 or path is None or not path.is_file():
        pytest.fail(
            "Could not obtain the Compose Specification JSON schema via "
            f"scripts/fetch-compose-schema.sh (exit {proc.returncode}); it is downloaded once "
            "from PyPI (check-jsonschema wheel) and cached under .state/compose-spec/.\n"
            f"stderr:\n{proc.stderr}",
            pytrace=False,
        )
    return yaml.safe_load(path.read_text())  # JSON is YAML; keeps one loader


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service_env(service: dict) -> dict[str, str]:
    """A service's environment as strings, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def trackius_env(service: dict) -> dict[str, str]:
    return {k: v for k, v in service_env(service).items() if k.startswith("TRACKIUS_")}


def settings_var_names() -> dict[str, tuple[str, str]]:
    """Every variable Settings.from_env reads -> (owner, field name)."""
    names = {f"TRACKIUS_{f.name.upper()}": ("settings", f.name)
             for f in fields(Settings) if f.name != "topics"}
    names.update({f"TRACKIUS_TOPIC_{f.name.upper()}": ("topics", f.name) for f in fields(Topics)})
    return names


def app_services(compose: dict) -> dict[str, dict]:
    """The services that run Trackius code: those that set TRACKIUS_* variables."""
    return {n: s for n, s in compose["services"].items() if trackius_env(s)}


def one_env(compose: dict) -> dict[str, str]:
    envs = {n: trackius_env(s) for n, s in app_services(compose).items()}
    assert envs, "no service sets TRACKIUS_* variables"
    return next(iter(envs.values()))


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", DOCKERFILE.read_text(), re.MULTILINE))


def pom_version(server: str, artifact_id: str) -> str:
    root = ET.parse(REPO_ROOT / "deploy" / "maven" / server / "pom.xml").getroot()
    for dep in root.iterfind(".//m:dependency", POM_NS):
        if dep.findtext("m:artifactId", namespaces=POM_NS) == artifact_id:
            return dep.findtext("m:version", namespaces=POM_NS).strip()
    raise AssertionError(f"{artifact_id} not found in deploy/maven/{server}/pom.xml")


def image_tag(compose: dict, repository: str) -> str:
    tags = [s["image"].rsplit(":", 1)[1] for s in compose["services"].values()
            if s.get("image", "").rsplit(":", 1)[0] == repository]
    assert len(tags) == 1, f"expected one service with image {repository}:<tag>, found {tags}"
    return tags[0]


def minor(version: str) -> tuple[int, int]:
    major, minor_, *_ = version.split(".")
    return int(major), int(minor_)


def container_ports(service: dict) -> set[int]:
    out = set()
    for port in service.get("ports", []):
        out.add(int(port["target"]) if isinstance(port, dict)
                else int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return out


def flink_properties(service: dict) -> dict[str, str]:
    text = service_env(service).get("FLINK_PROPERTIES", "")
    pairs = (line.split(":", 1) for line in text.splitlines() if line.strip())
    return {key.strip(): value.strip() for key, value in pairs}


def command_text(service: dict) -> str:
    parts = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts.append(value if isinstance(value, str) else " ".join(map(str, value)))
    return " ".join(parts)


def schema_errors(document: dict, schema: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                  for e in validator.iter_errors(document))


# -- (1) the Compose Specification -----------------------------------------------------------

def test_compose_file_validates_against_compose_spec_schema():
    """docker-compose.yml is valid under the official Compose Specification JSON schema."""
    errors = schema_errors(load_compose(), compose_schema())
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(errors)


def test_compose_schema_check_rejects_an_invalid_file():
    """The schema check bites: an unknown service key and a wrong depends_on condition fail."""
    schema = compose_schema()
    broken = copy.deepcopy(load_compose())
    broken["services"]["kafka"]["helthcheck"] = {"test": ["CMD", "true"]}
    broken["services"]["job"]["depends_on"]["setup"]["condition"] = "service_finished"
    errors = schema_errors(broken, schema)
    assert any("helthcheck" in e for e in errors), errors
    assert any("depends_on" in e for e in errors), errors


def test_schema_fetch_failure_is_reported(tmp_path):
    """Without the cache and without an index, the fetch script fails loudly, never silently."""
    env = {**os.environ, "TRACKIUS_STATE_DIR": str(tmp_path), "PIP_NO_INDEX": "1",
           "PIP_CONFIG_FILE": os.devnull}
    proc = fetch_compose_schema(env)
    assert proc.returncode != 0
    assert "could not download check-jsonschema" in proc.stderr
    assert proc.stdout.strip() == ""
    assert not list(tmp_path.rglob("compose-spec.json"))


# -- (2) consistency with the local stack ----------------------------------------------------

def test_trackius_variables_are_settings_fields_and_parse():
    """Every TRACKIUS_* variable in compose is read by Settings.from_env, with that value."""
    compose = load_compose()
    known = settings_var_names()
    used = set()
    for name, service in compose["services"].items():
        env = trackius_env(service)
        unknown = sorted(set(env) - set(known))
        assert not unknown, f"service {name}: not Settings fields: {unknown}"
        used |= set(env)
        settings = Settings.from_env(env)
        for var, raw in env.items():
            owner, field_name = known[var]
            value = getattr(settings.topics if owner == "topics" else settings, field_name)
            if isinstance(value, Path):
                assert Path(raw).is_absolute(), f"{name}: {var}={raw!r} must be an absolute path"
                assert value == Path(raw).resolve(), (name, var, value)
            else:
                assert value == type(value)(raw) and str(value) == raw, (name, var, value)
    # Variables referenced inside container commands ($$NAME / $${NAME} in compose) too.
    referenced = set(re.findall(r"\$\$\{?(TRACKIUS_[A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    assert referenced <= set(known), sorted(referenced - set(known))
    assert referenced <= used, f"referenced but never set: {sorted(referenced - used)}"


def test_app_services_share_one_settings_environment():
    """setup, jobmanager, taskmanager, job and fanout all see the same TRACKIUS_* settings."""
    compose = load_compose()
    envs = {n: trackius_env(s) for n, s in app_services(compose).items()}
    assert set(envs) >= {"setup", "jobmanager", "taskmanager", "job", "fanout"}, sorted(envs)
    first = next(iter(envs.values()))
    for name, env in envs.items():
        assert env == first, f"{name} differs: {set(env.items()) ^ set(first.items())}"


def test_container_addresses_in_settings():
    """Settings point at the compose services: kafka:9092, cassandra:9042, fan-out on 0.0.0.0."""
    compose = load_compose()
    s = Settings.from_env(one_env(compose))
    assert s.kafka_bootstrap == "kafka:9092"
    assert s.kafka_bootstrap.split(":")[0] in compose["services"]
    assert (s.cassandra_host, s.cassandra_port) == ("cassandra", 9042)
    assert s.cassandra_host in compose["services"]
    assert s.fanout_host == "0.0.0.0"
    assert s.fanout_port in container_ports(compose["services"]["fanout"])
    assert s.flink_rest_port == 8081
    assert s.flink_rest_port in container_ports(compose["services"]["jobmanager"])
    jobmanager = flink_properties(compose["services"]["jobmanager"])
    assert jobmanager["rest.port"] == str(s.flink_rest_port)


def test_topics_and_message_limit_match_settings_defaults():
    """Topic names equal Settings defaults and Kafka's size limits equal 4 MiB everywhere."""
    compose = load_compose()
    s = Settings.from_env(one_env(compose))
    assert s.topics == Topics()
    assert s.max_message_bytes == Settings().max_message_bytes == MIB4
    kafka = service_env(compose["services"]["kafka"])
    assert int(kafka["KAFKA_MESSAGE_MAX_BYTES"]) == s.max_message_bytes
    assert int(kafka["KAFKA_REPLICA_FETCH_MAX_BYTES"]) >= s.max_message_bytes
    assert int(kafka["KAFKA_NUM_PARTITIONS"]) == s.kafka_partitions
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_connector_jar_version_matches_flink_pom():
    """The Dockerfile's Kafka connector is the version in deploy/maven/flink/pom.xml."""
    version = pom_version("flink", "flink-sql-connector-kafka")
    args = dockerfile_args()
    assert args["KAFKA_CONNECTOR_VERSION"] == version
    assert Settings().connector_jar.name == f"flink-sql-connector-kafka-{version}.jar"
    text = DOCKERFILE.read_text()
    assert "/opt/flink/lib/flink-sql-connector-kafka-${KAFKA_CONNECTOR_VERSION}.jar" in text
    assert re.search(r"--checksum=sha256:\$\{KAFKA_CONNECTOR_SHA256\}", text)
    assert re.fullmatch(r"[0-9a-f]{64}", args["KAFKA_CONNECTOR_SHA256"])


def test_kafka_image_matches_kafka_pom():
    """The apache/kafka image tag equals kafka_2.13's version in deploy/maven/kafka/pom.xml."""
    assert image_tag(load_compose(), "apache/kafka") == pom_version("kafka", "kafka_2.13")


def test_cassandra_image_matches_cassandra_pom():
    """The cassandra image's major.minor is cassandra-all's in deploy/maven/cassandra/pom.xml."""
    tag = image_tag(load_compose(), "cassandra")
    assert minor(tag) == minor(pom_version("cassandra", "cassandra-all"))


def test_flink_base_image_matches_requirements():
    """The Dockerfile's flink base image has requirements.txt's apache-flink minor, on Java 17."""
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", requirements, re.MULTILINE))
    args = dockerfile_args()
    assert minor(args["FLINK_VERSION"]) == minor(pins["apache-flink"])
    pattern = r"^FROM flink:\$\{FLINK_VERSION\}-java17\b"
    base = re.search(pattern, DOCKERFILE.read_text(), re.MULTILINE)
    assert base, "deploy/Dockerfile must build on flink:${FLINK_VERSION}-java17"
    compose = load_compose()
    images = {s["image"] for s in app_services(compose).values()}
    assert images == {f"trackius-flink:{args['FLINK_VERSION']}"}, images


def test_dockerfile_installs_python311_requirements_and_project():
    """The image has Python 3.11, one `pip install -r requirements.txt`, and every package."""
    text = DOCKERFILE.read_text()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert dockerfile_args()["PYTHON_VERSION"] == "3.11"
    assert "<3.12" in project["project"]["requires-python"]
    assert re.search(r"pip install -r \S*requirements\.txt", text)
    assert re.search(r"pip install .*--no-deps -e \.", text)
    for package in project["tool"]["setuptools"]["packages"]:
        assert re.search(rf"^COPY {package} \./{package}$", text, re.MULTILINE), package


def test_job_submission_uses_the_image_python():
    """The job service submits jobs/analyze.py to jobmanager's REST port with the venv python."""
    compose = load_compose()
    job = compose["services"]["job"]
    cmd = command_text(job)
    rest = Settings.from_env(trackius_env(job)).flink_rest_port
    assert "flink run" in cmd and "--detached" in cmd
    assert f"-m jobmanager:{rest}" in cmd
    assert "-py /opt/trackius/jobs/analyze.py" in cmd
    assert "-pyexec /opt/venv/bin/python" in cmd
    assert "python -m venv /opt/venv" in DOCKERFILE.read_text()
    for name in ("jobmanager", "taskmanager", "job"):
        properties = flink_properties(compose["services"][name])
        assert properties["python.executable"] == "/opt/venv/bin/python", name
    assert "services.fanout" in command_text(compose["services"]["fanout"])
    assert "trackius admin init" in command_text(compose["services"]["setup"]).replace(
        "/opt/venv/bin/", "")


def test_checkpoints_live_on_the_shared_state_volume():
    """Flink's checkpoint dir is Settings.checkpoint_dir, on one volume shared by JM, TM and job."""
    compose = load_compose()
    s = Settings.from_env(one_env(compose))
    state = str(s.state_dir)
    mounts = {}
    for name in ("jobmanager", "taskmanager", "job"):
        service = compose["services"][name]
        checkpoints = flink_properties(service)["execution.checkpointing.dir"]
        assert checkpoints == f"file://{s.checkpoint_dir}", name
        mounts[name] = {v.split(":")[0] for v in service.get("volumes", [])
                        if isinstance(v, str) and v.split(":")[1] == state}
        assert mounts[name], f"{name} does not mount a volume at {state}"
    assert len(set.union(*mounts.values())) == 1, mounts
    assert set.union(*mounts.values()) <= set(compose.get("volumes", {})), "not a named volume"


def test_start_order_uses_healthchecks():
    """depends_on conditions are satisfiable: healthy targets have healthchecks, one-shots exit."""
    compose = load_compose()
    services = compose["services"]
    for name, service in services.items():
        for target, dep in (service.get("depends_on") or {}).items():
            condition = dep["condition"]
            if condition == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), f"{name} -> {target}"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{name} -> {target}"
    deps = {n: {t: d["condition"] for t, d in (s.get("depends_on") or {}).items()}
            for n, s in services.items()}
    assert deps["setup"] == {"kafka": "service_healthy", "cassandra": "service_healthy"}
    assert deps["job"] == {"setup": "service_completed_successfully",
                           "jobmanager": "service_healthy", "taskmanager": "service_healthy"}
    assert deps["fanout"].get("setup") == "service_completed_successfully"
    for name in ("kafka", "cassandra", "jobmanager", "taskmanager", "fanout"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
