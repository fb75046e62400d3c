"""Process environment: offline defaults and the project-local Dagster instance.

Nothing here may reach the network: Dagster, DVC and MLflow telemetry are switched off, and the
Dagster instance lives in the project (``.dagster_home/``) so that runs started from the UI, the
CLI and ``dvc repro`` are recorded in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DAGSTER_DISABLE_TELEMETRY": "true",
    # MediaPipe/TFLite and absl log noise on every import.
    "GLOG_minloglevel": "2",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}

# One pool per asset (pg2/<asset>, declared on the assets), one run at a time in each: the UI
# queues a run while another run that writes one of its assets is in progress. `run`
# granularity: the daemon holds the whole run in the queue. (At `op` granularity a waiting
# in-process run polls in a busy loop, a full core, in Dagster 1.13.)
CONCURRENCY_YAML = """\
concurrency:
  pools:
    default_limit: 1
    granularity: run
"""

DAGSTER_YAML = (
    """\
# Project-local Dagster instance (created by pg2_pipeline.env). Telemetry off: no network here.
telemetry:
  enabled: false
# no "join the community" pop-up in the UI (it links to the internet)
nux:
  enabled: false
"""
    + CONCURRENCY_YAML
)


def apply_offline_defaults() -> None:
    """Sets the offline environment variables unless the user set them already."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def find_project_root(start: Path | None = None) -> Path:
    """The project folder: $PG2_PROJECT_DIR, else the nearest folder (from ``start`` or the
    working directory upwards) that holds ``params.yaml`` and ``dvc.yaml``."""
    env = os.environ.get("PG2_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file() and (folder / "dvc.yaml").is_file():
            return folder
    raise FileNotFoundError(
        f"no pg2-pipeline project found from {here}: expected a folder with params.yaml and "
        "dvc.yaml (run from the project folder or set PG2_PROJECT_DIR)"
    )


def ensure_dagster_home(project_root: Path | None = None) -> Path:
    """Points DAGSTER_HOME at the project's instance (unless set) and creates it with telemetry
    off. Returns the folder."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str((project_root or find_project_root()) / ".dagster_home")
        os.environ["DAGSTER_HOME"] = home
    path = Path(home)
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    text = config.read_text() if config.exists() else None
    if text is not None and text.startswith(DAGSTER_YAML.splitlines()[0]) and "concurrency:" not in text:
        text += CONCURRENCY_YAML  # an instance this module made before the asset pools existed
    elif text is None:
        text = DAGSTER_YAML
    else:
        return path
    tmp = config.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(config)
    return path
