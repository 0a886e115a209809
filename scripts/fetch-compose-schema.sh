#!/usr/bin/env bash
# Prints the path of the official Compose Specification JSON schema, fetching it once if needed.
#
# The schema (github.com/compose-spec/compose-spec, master:schema/compose-spec.json, Apache-2.0) is not
# copied into this repository. It is taken from a pinned, hash-checked wheel on PyPI that vendors
# it verbatim: check-jsonschema (check_jsonschema/builtin_schemas/vendor/compose-spec.json, with
# its licence in .../vendor/licenses/LICENSE.compose-spec). The wheel is only downloaded
# (`pip download --no-deps`), never installed. The result is cached under the state directory
# (gitignored), so later runs make no network call.
#
# Usage: scripts/fetch-compose-schema.sh [--force]
#   stdout: the absolute path of compose-spec.json (last line); diagnostics go to stderr.
# Environment: TRACKIUS_STATE_DIR (default <repo>/.state), PYTHON (default .venv/bin/python),
#   and pip's own variables (PIP_INDEX_URL, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

# Bump both together: the sha256 is PyPI's digest of exactly this wheel.
PKG_VERSION="0.39.0"
WHEEL="check_jsonschema-${PKG_VERSION}-py3-none-any.whl"
WHEEL_SHA256="14ce5c94871c551268ea948ffe21e9f1464dc48fb20bf9a4c13deeaaf756cf9b"
MEMBER="check_jsonschema/builtin_schemas/vendor/compose-spec.json"
LICENSE_MEMBER="check_jsonschema/builtin_schemas/vendor/licenses/LICENSE.compose-spec"
# The wheel's own record of the sha256 of the upstream file it vendored.
SHA_MEMBER="check_jsonschema/builtin_schemas/vendor/sha256/compose-spec.sha256"

STATE="${TRACKIUS_STATE_DIR:-$PWD/.state}"
DEST="$STATE/compose-spec/check-jsonschema-$PKG_VERSION"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="$(command -v python3)"; fi
fi
err() { printf '[fetch-compose-schema] %s\n' "$*" >&2; }

if [ "${1:-}" != "--force" ] && [ -s "$DEST/compose-spec.json" ] && [ -f "$DEST/.complete" ]; then
  printf '%s\n' "$DEST/compose-spec.json"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf 'check-jsonschema==%s --hash=sha256:%s\n' "$PKG_VERSION" "$WHEEL_SHA256" >"$tmp/req.txt"
err "downloading $WHEEL from the package index (pip download --no-deps, hash-checked)"
if ! "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$tmp/req.txt" -d "$tmp/dl" >&2; then
  err "could not download check-jsonschema==$PKG_VERSION from the package index;"
  err "the Compose schema is taken from that wheel. Check network/PIP_INDEX_URL and retry."
  exit 2
fi

mkdir -p "$DEST"
"$PY" - "$tmp/dl/$WHEEL" "$DEST" "$MEMBER" "$LICENSE_MEMBER" "$SHA_MEMBER" "$PKG_VERSION" <<'PY'
import hashlib, json, pathlib, sys, zipfile

wheel, dest, member, license_member, sha_member, version = sys.argv[1:]
dest = pathlib.Path(dest)
with zipfile.ZipFile(wheel) as zf:
    raw = zf.read(member)
    licence = zf.read(license_member)
    recorded = zf.read(sha_member).decode().split()[0]
if hashlib.sha256(raw).hexdigest() != recorded:
    sys.exit(f"{member}: sha256 differs from the one recorded in {sha_member}")
schema = json.loads(raw)
if schema.get("title") != "Compose Specification" or "services" not in schema.get("properties", {}):
    sys.exit(f"{member} in {wheel} does not look like the Compose Specification schema")
(dest / "LICENSE.compose-spec").write_bytes(licence)
(dest / "SOURCE").write_text(
    f"PyPI check-jsonschema=={version}, member {member}, sha256 {recorded}\n"
    "Upstream: https://github.com/compose-spec/compose-spec/blob/master/schema/compose-spec.json\n"
)
tmp = dest / "compose-spec.json.part"
tmp.write_bytes(raw)
tmp.replace(dest / "compose-spec.json")
PY
touch "$DEST/.complete"
err "cached at $DEST"
printf '%s\n' "$DEST/compose-spec.json"
