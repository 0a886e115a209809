#!/usr/bin/env bash
# Puts the two OCR models that udfs/ocr.py reads into a directory, fetching them once if needed.
#
# The models are PaddleOCR's PP-OCRv4 text detector and recogniser (Apache-2.0), converted to
# ONNX and shipped inside the pinned `rapidocr-onnxruntime` wheel on PyPI (Apache-2.0). The wheel
# is only downloaded (`pip download --no-deps`, hash-checked), never installed: just the two
# .onnx files are extracted, and each is checked against the sha256 below. The recogniser
# carries its character dictionary in its own metadata, so nothing else is needed. A second run
# with the files in place makes no network call.
#
# Usage: scripts/fetch-ocr-models.sh <target_dir>
# Environment: PYTHON (default .venv/bin/python, else python3) and pip's own variables
#   (PIP_INDEX_URL, ...).
set -euo pipefail

# Bump all together: WHEEL_SHA256 is PyPI's digest of exactly this wheel.
PKG_VERSION="1.4.4"
WHEEL_SHA256="971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
DET="ch_PP-OCRv4_det_infer.onnx"
DET_SHA256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
REC="ch_PP-OCRv4_rec_infer.onnx"
REC_SHA256="48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"

err() { printf '[fetch-ocr-models] %s\n' "$*" >&2; }
[ $# -eq 1 ] || { err "usage: $0 <target_dir>"; exit 2; }
TARGET="$1"

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY="$(command -v python3)"; fi
fi

matches() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if matches "$TARGET/$DET" "$DET_SHA256" && matches "$TARGET/$REC" "$REC_SHA256"; then
  err "models already in $TARGET"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# --require-hashes makes pip refuse any wheel but the one whose digest is pinned above.
printf 'rapidocr-onnxruntime==%s --hash=sha256:%s\n' "$PKG_VERSION" "$WHEEL_SHA256" > "$tmp/req.txt"
err "downloading rapidocr-onnxruntime $PKG_VERSION (about 15 MB) from the package index"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp"

wheel="$tmp/rapidocr_onnxruntime-${PKG_VERSION}-py3-none-any.whl"
mkdir -p "$tmp/x" "$TARGET"
for name in "$DET" "$REC"; do
  "$PY" - "$wheel" "rapidocr_onnxruntime/models/$name" "$tmp/x/$name" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
done
matches "$tmp/x/$DET" "$DET_SHA256" || { err "sha256 mismatch for $DET"; exit 1; }
matches "$tmp/x/$REC" "$REC_SHA256" || { err "sha256 mismatch for $REC"; exit 1; }
# Moved in only once both are verified, so an interrupted run never leaves a half model behind.
mv -f "$tmp/x/$DET" "$tmp/x/$REC" "$TARGET/"
err "models in $TARGET"
