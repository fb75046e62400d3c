#!/usr/bin/env bash
# Re-resolves requirements/*.in into requirements/*lock.txt in throw-away environments.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/main"
"$tmp/main/bin/pip" install --quiet torch==2.13.0
"$tmp/main/bin/pip" install --quiet -r requirements/project.in
"$tmp/main/bin/pip" freeze --all --exclude torch | grep -v -E '^pip==|^#' > requirements/lock.txt
python3 -m venv "$tmp/dvc"
"$tmp/dvc/bin/pip" install --quiet -r requirements/dvc.in
"$tmp/dvc/bin/pip" freeze --all | grep -v '^pip==' > requirements/dvc-lock.txt
echo "wrote requirements/lock.txt and requirements/dvc-lock.txt"
