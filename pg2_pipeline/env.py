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

DAGSTER_YAML = """\
# Project-local Dagster instance (created by pg2_pipeline.env). Telemetry off: no network here.
telemetry:
  enabled: false
# no "join the community" pop-up in the UI (it links to the internet)
nux:
  enabled: false
"""


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
    if not config.exists():
        tmp = config.with_suffix(".yaml.tmp")
        tmp.write_text(DAGSTER_YAML)
        tmp.replace(config)
    return path


# glibc serves every allocation above its mmap threshold (at most 32 MB by default) with fresh
# pages from the kernel and returns them on free, so a training step that allocates the same
# large tensors again and again page-faults them in every time: a (64, 18, 128, 64) float batch
# of pose maps (38 MB) took 5× longer to make than to fill. Keeping blocks up to 256 MB in the
# heap, and not trimming it below 1 GB of free top, removes that cost.
MMAP_THRESHOLD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>


def keep_large_allocations() -> bool:
    """Raises glibc's mmap and trim thresholds for this process (training and benchmarks);
    False, changing nothing, where the C library is not glibc or the user set
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (theirs wins)."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        )
    except (OSError, AttributeError):
        return False
