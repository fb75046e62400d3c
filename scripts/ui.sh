#!/usr/bin/env bash
# `make ui`: the Dagster UI (dagster dev) and the MLflow UI, both on 127.0.0.1, stopped together
# by Ctrl-C. Ports: DAGSTER_PORT (3000) and MLFLOW_PORT (5000).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
dagster_port=${DAGSTER_PORT:-3000}
mlflow_port=${MLFLOW_PORT:-5000}
tracking=$($bin/python -c "from pathlib import Path; from pg2_pipeline.config import load_params; from pg2_pipeline.train.tracking import tracking_uri; print(tracking_uri(load_params('params.yaml'), Path.cwd()))")

# A background job of a non-interactive shell starts with SIGINT ignored; dagster dev then
# ignores Ctrl-C. Restore the default handler before exec-ing each server.
with_sigint() { "$bin/python" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"; }

with_sigint "$bin/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "$dagster_port" &
dagster_pid=$!
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false with_sigint "$bin/mlflow" server --host 127.0.0.1 --port "$mlflow_port" \
  --workers 1 --backend-store-uri "$tracking" &
mlflow_pid=$!

stop() {
  trap - INT TERM
  echo; echo "==> stopping dagster dev ($dagster_pid) and mlflow ($mlflow_pid)"
  kill -INT "$dagster_pid" "$mlflow_pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$dagster_pid" 2>/dev/null || kill -0 "$mlflow_pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -TERM "$dagster_pid" "$mlflow_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM
echo "==> Dagster UI: http://127.0.0.1:$dagster_port   MLflow UI: http://127.0.0.1:$mlflow_port   (Ctrl-C stops both)"
wait
