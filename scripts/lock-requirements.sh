#!/usr/bin/env bash
# Re-resolve requirements.in in a scratch virtualenv and pin the result into requirements.txt.
# One resolve: every pin comes from the same `pip install`, and `pip check` must pass on it.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3.11 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --upgrade pip
"$scratch/venv/bin/python" -m pip install -q -r requirements.in
"$scratch/venv/bin/python" -m pip check
{
  sed -n '1,/^# joblib/p' requirements.txt | grep '^#'
  "$scratch/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^-e '
} > requirements.txt.new
mv requirements.txt.new requirements.txt
echo "requirements.txt: $(grep -vc '^#' requirements.txt) pins"
