#!/usr/bin/env bash
# `make ui`: the Dagster UI (dagster dev), the MLflow UI and the pose-transfer page (pg2 serve), all
# on 127.0.0.1, stopped together by Ctrl-C (SIGINT) or SIGTERM (`kill PID`, a process manager).
# Ports: DAGSTER_PORT (3000), MLFLOW_PORT (5000) and SERVE_PORT (7860).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
dagster_port=${DAGSTER_PORT:-3000}
mlflow_port=${MLFLOW_PORT:-5000}
serve_port=${SERVE_PORT:-7860}
# The MLflow store of the project (or $MLFLOW_TRACKING_URI), its tables made now (the MLflow server
# and pg2 serve start together and would both make them); the Dagster instance must exist.
tracking=$($bin/python -c "
from pathlib import Path
from pg2_pipeline.config import load_params
from pg2_pipeline.env import ensure_dagster_home
from pg2_pipeline.tracking import prepare_store, tracking_uri
ensure_dagster_home(Path.cwd())
uri = tracking_uri(load_params('params.yaml'), Path.cwd())
prepare_store(uri)
print(uri)")

# Each server is exec'd (so $! is the server itself, not a subshell around it) as the leader of a
# process group of its own, with SIGINT back at its default: a background job of a
# non-interactive shell starts with SIGINT ignored, and dagster dev would then ignore it. The
# group holds the server's own children (code server, webserver, gunicorn workers), so stopping
# the group leaves nothing behind.
serve() { exec "$bin/python" -c 'import os, signal, sys; os.setpgid(0, 0); signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"; }

serve "$bin/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "$dagster_port" &
dagster_pid=$!
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false serve "$bin/mlflow" server --host 127.0.0.1 --port "$mlflow_port" \
  --workers 1 --backend-store-uri "$tracking" &
mlflow_pid=$!
# The page serves the project's registered generator; before `make demo` it says there is none yet.
serve "$bin/pg2" serve --host 127.0.0.1 --port "$serve_port" --tracking-uri "$tracking" &
serve_pid=$!

alive() { kill -0 -- "-$1" 2>/dev/null; }  # any process left in the group?

stop() {  # stop EXIT-STATUS: SIGINT to every group (a clean shutdown), SIGKILL after 20 s
  trap '' INT TERM
  echo; echo "==> stopping dagster dev ($dagster_pid), mlflow ($mlflow_pid) and pg2 serve ($serve_pid)"
  kill -INT -- "-$dagster_pid" "-$mlflow_pid" "-$serve_pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    alive "$dagster_pid" || alive "$mlflow_pid" || alive "$serve_pid" || break
    sleep 0.5
  done
  for pid in "$dagster_pid" "$mlflow_pid" "$serve_pid"; do
    if alive "$pid"; then
      echo "==> process group $pid did not stop within 20 s: killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM
echo "==> Dagster UI: http://127.0.0.1:$dagster_port   MLflow UI: http://127.0.0.1:$mlflow_port   pose transfer: http://127.0.0.1:$serve_port   (Ctrl-C stops all three)"
# Any server exiting on its own (a port already taken, say) stops the others too.
wait -n || true
echo "==> a server exited on its own"
stop 1
