# The README's two commands: `make demo` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PYTHONUNBUFFERED := 1
# Tests use both cores and list the 15 slowest; override with `make test PYTEST_ARGS=...`.
PYTEST_ARGS ?= -n 2 --durations=15

.PHONY: setup demo test ui bench lock clean

setup:
	@scripts/bootstrap.sh

# The main job on the embedded default dataset (the synthetic twin, `quick` profile).
# The closing lines say where the time went: setup (timed here) and each stage.
demo:
	@start=$$(date +%s); scripts/bootstrap.sh && \
	  PG2_SETUP_SECONDS=$$(( $$(date +%s) - start )) $(PY) -m pg2_pipeline demo

test: setup
	@scripts/ensure_chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# The Dagster UI (http://127.0.0.1:3000), the MLflow UI (http://127.0.0.1:5000) and the pose-transfer
# page (http://127.0.0.1:7860, `pg2 serve`); Ctrl-C stops all three.
ui: setup
	@scripts/ui.sh

# bench_precision trains on the quick twin's manifests: `dvc repro manifests` makes them (or skips).
bench: setup
	$(VENV)/bin/dvc repro manifests
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Regenerate the pinned lock files from requirements/*.in in scratch environments.
lock:
	@scripts/lock.sh

clean:
	rm -rf assets .dagster_home mlruns mlflow.db
