"""MLflow tracking for the training and evaluation stages: where the store is, the experiment,
batched per-step metrics and the UI link of a run.

The default store is a project-local SQLite database (``sqlite:///mlflow.db`` in params, resolved
against the project folder) with artifacts in ``mlartifacts/``; ``$MLFLOW_TRACKING_URI`` wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ARTIFACT_DIR = "mlartifacts"
UI_URL = "http://127.0.0.1:5000"  # where `make ui` serves the MLflow UI


def tracking_uri(params, root: Path) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str((root / uri[len(prefix) :]).resolve())
    return uri


def use_tracking_uri(uri: str) -> None:
    """``mlflow.set_tracking_uri(uri)`` for this process only. MLflow 3 also exports the URI as
    ``$MLFLOW_TRACKING_URI``, which :func:`tracking_uri` reads as the user's choice and child
    processes (``dvc repro``) inherit: one project's store would then capture the next
    project's runs. The variable is put back as it was; MLflow keeps the URI it was given."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def setup(params, root: Path):
    """Points mlflow at the project's store and makes sure the experiment exists; returns the
    experiment id."""
    import mlflow

    uri = tracking_uri(params, root)
    use_tracking_uri(uri)
    name = params.mlflow.experiment
    with _one_at_a_time(uri):
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            location = (root / ARTIFACT_DIR).resolve().as_uri()
            return mlflow.create_experiment(name, artifact_location=location)
    return experiment.experiment_id


def prepare_store(uri: str) -> None:
    """Creates a SQLite store's tables now, one process at a time: `make ui` calls it before it
    starts the MLflow server and `pg2 serve` together, which would otherwise both create the
    tables of a new store (one fails: "table ... already exists")."""
    from mlflow import MlflowClient

    with _one_at_a_time(uri):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)


@contextlib.contextmanager
def _one_at_a_time(uri: str) -> Iterator[None]:
    """Across processes, one at a time through a SQLite store's first use. Two stages started
    together on a new project (the UI runs independent assets at once) would otherwise both
    create its tables (one fails: "duplicate column name") or both create the experiment (one
    fails: it exists). Once made, the store is safe to share: MLflow waits up to 20 s for a
    busy database (``PRAGMA busy_timeout``)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):  # a server or another database serialises this itself
        yield
        return
    lock = Path(uri[len(prefix) :] + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def log_step_metrics(run_id: str, pending: list[tuple[int, dict, float]]) -> None:
    """Per-step values (and images/s) of a log interval in one synchronous batch write: cheaper
    than one asynchronous call per metric."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(k, float(v), now, step)
        for step, result, ips in pending
        for k, v in ({**result, "images_per_second": ips} if ips is not None else result).items()
    ]
    for start in range(0, len(metrics), 1000):  # the store's batch limit
        MlflowClient().log_batch(run_id, metrics=metrics[start : start + 1000])


def run_exists(run_id: str) -> bool:
    """Whether the active tracking store holds run ``run_id``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return True


def run_url(experiment_id: str, run_id: str) -> str:
    return f"{UI_URL}/#/experiments/{experiment_id}/runs/{run_id}"


def flatten(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(name, value))
        else:
            out[name] = str(value)
    return out
