#!/usr/bin/env bash
# Regenerates the image's pinned, hashed dependency locks from pyproject.toml:
#   requirements.lock        runtime dependencies of balance-sink (no extras)
#   requirements-build.lock  the wheel build backend (pyproject's [build-system])
# Run it with Python 3.11 (the image's Python) after changing pyproject's dependencies,
# then commit both files; tests/deploy/test_image.py fails while they disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "deploy/lock.sh: needs Python 3.11 (set PYTHON=...)" >&2; exit 2; }
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools"
"$tools/bin/pip" install -q pip-tools==7.6.2
export CUSTOM_COMPILE_COMMAND="deploy/lock.sh"
common=(--quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links)
"$tools/bin/pip-compile" "${common[@]}" --output-file requirements.lock pyproject.toml
echo "setuptools>=77" | "$tools/bin/pip-compile" "${common[@]}" --allow-unsafe \
  --output-file requirements-build.lock -
