"""MLflow under concurrency: two stages logging at once to a new project's SQLite store (the UI
runs independent assets in parallel) lose no metric, tag, param or registration, and neither
fails with "database is locked" or a half-made store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
STEPS = 60

STAGE = """
import sys, time
from pathlib import Path
import mlflow
from pg2_pipeline import summaries, tracking
from pg2_pipeline.config import load_params
from pg2_pipeline.registry.publish import register

root, name, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
params = load_params(root / "params.yaml")
time.sleep(max(0.0, start - time.time()))  # both reach the new store together
experiment = tracking.setup(params, root)
with mlflow.start_run(experiment_id=experiment, run_name=name, tags={"pg2.stage": name}) as run:
    mlflow.log_params({f"{name}.p{i}": i for i in range(20)})
    for step in range(1, STEPS + 1):  # as the training loop logs: one batch per interval, and tags
        tracking.log_step_metrics(run.info.run_id, [(step, {"loss": 1.0 / step, "other": float(step)}, 12.5)])
        mlflow.set_tags({"progress": str(step), f"t{step % 5}": name})
    (root / f"{name}.txt").write_text(name)
    mlflow.log_artifact(str(root / f"{name}.txt"), artifact_path="weights")
    gate = summaries.ChampionGate(True, "mask_ssim", 0.5, "copy", 0.4, f"{name} beats the copy")
    version = register(mlflow.get_artifact_uri("weights"), f"model-{name}", gate, tags={"stage": name})
print(version.version, flush=True)
"""


def test_two_stages_logging_at_once_to_a_new_store_lose_nothing(tmp_path):
    from mlflow import MlflowClient

    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text((Path(__file__).resolve().parent.parent / "params.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = f"{time.time() + 8:.3f}"  # after both interpreters have imported mlflow
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", STAGE.replace("STEPS", str(STEPS)), str(root), name, start],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for name in ("stage1", "evaluation")
    }
    outputs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{outputs[name][-4000:]}"
        assert "database is locked" not in outputs[name]

    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("pg2").experiment_id])}
    assert set(runs) == {"stage1", "evaluation"}
    for name, run in runs.items():
        assert run.info.status == "FINISHED"
        for metric in ("loss", "other", "images_per_second"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == list(range(1, STEPS + 1))
        assert run.data.params == {f"{name}.p{i}": str(i) for i in range(20)}
        assert run.data.tags["progress"] == str(STEPS) and all(run.data.tags[f"t{i}"] == name for i in range(5))
        [version] = client.search_model_versions(f"name = 'model-{name}'")
        assert version.tags == {"stage": name, "champion_gate": f"{name} beats the copy"}
        assert str(client.get_model_version_by_alias(f"model-{name}", "champion").version) == str(version.version)
