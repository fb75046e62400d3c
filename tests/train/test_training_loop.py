"""The training loop on the tiny twin: resume after SIGKILL gives bit-identical weights, NaN
stops the run naming the step and checkpoint, checkpoints load without pickle, MLflow records
the run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pg2_pipeline import summaries
from pg2_pipeline.config import load_params
from pg2_pipeline.models import io as ckpt
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.provenance import code_hash
from pg2_pipeline.train.loop import TrainingDivergedError
from pg2_pipeline.train.stages import train_stage

from conftest import set_params

TRAIN = """
import sys
from pg2_pipeline.config import load_params
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.train.stages import train_stage
from pathlib import Path
paths = ProjectPaths(Path(sys.argv[1]))
train_stage(sys.argv[2], load_params(paths.params_file), paths, progress=False)
"""


def project_copy(tiny_manifests: Path, dest: Path, **stage1) -> Path:
    shutil.copytree(
        tiny_manifests,
        dest,
        ignore=shutil.ignore_patterns("stage1", "stage2", "evaluation", "mlflow.db", "mlartifacts"),
    )
    set_params(
        dest,
        stage1={
            "profiles": {
                "tiny": {
                    "steps": 8,
                    "batch_size": 4,
                    "base_channels": 8,
                    "checkpoint_every": 2,
                    "sample_every": 4,
                    "log_every": 1,
                    **stage1,
                }
            }
        },
    )
    return dest


def train(root: Path, stage: str = "stage1") -> subprocess.Popen:
    env = {**os.environ, "PG2_PROJECT_DIR": str(root), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN, str(root), stage],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_kill_and_resume_gives_identical_weights(tiny_manifests, tmp_path):
    # with validation and selection: the best weights survive the kill too
    selecting = {"validate_every": 2, "select": "best_mask_ssim", "ema_decay": 0.9}  # the weight average resumes too
    straight = project_copy(tiny_manifests, tmp_path / "straight", **selecting)
    assert train(straight).wait(timeout=300) == 0

    killed = project_copy(tiny_manifests, tmp_path / "killed", **selecting)
    proc = train(killed)
    folder = ProjectPaths(killed).stage("stage1")
    deadline = time.time() + 300
    while not ckpt.checkpoints(folder) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # at whatever point it has reached
    proc.wait()
    steps_done = [s for s, _ in ckpt.checkpoints(folder)]
    assert steps_done and max(steps_done) < 8, f"the run was not interrupted: {steps_done}"
    assert train(killed).wait(timeout=300) == 0

    a = load_file(ProjectPaths(straight).stage("stage1").weights("g1"))
    b = load_file(ProjectPaths(killed).stage("stage1").weights("g1"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    summary = summaries.read(ProjectPaths(killed).stage("stage1").summary, summaries.TrainingSummary)
    assert summary.resumed_from_step == max(steps_done)
    uninterrupted = summaries.read(ProjectPaths(straight).stage("stage1").summary, summaries.TrainingSummary)
    assert summary.selected == uninterrupted.selected and summary.final_validation == uninterrupted.final_validation
    # the loss and validation histories are continuous across the kill
    history = json.loads(ProjectPaths(killed).stage("stage1").history.read_text())
    assert [h["step"] for h in history] == list(range(1, 9))
    validation = json.loads(ProjectPaths(killed).stage("stage1").validation.read_text())
    assert [v["step"] for v in validation] == [0, 2, 4, 6, 8]


def test_selection_exports_the_best_validation_step_and_says_so(tiny_manifests, tmp_path, monkeypatch):
    import mlflow

    root = project_copy(tiny_manifests, tmp_path / "p", validate_every=2, select="best_mask_ssim")
    paths = ProjectPaths(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    summary = train_stage("stage1", load_params(paths.params_file), paths, progress=False)
    files = paths.stage("stage1")
    validation = json.loads(files.validation.read_text())
    assert [v["step"] for v in validation] == [0, 2, 4, 6, 8] and summary.validation_pairs == 16
    assert set(validation[0]) == {"step", "ssim", "mask_ssim", "l1", "lpips", "ssim_to_condition", "l1_to_condition"}
    best = max(validation[1:], key=lambda v: v["mask_ssim"])  # step 0 (untrained) never counts
    assert summary.selected == summaries.Selected("best_mask_ssim", best["step"], "mask_ssim", best["mask_ssim"])
    exported = load_file(files.weights("g1"))
    chosen = ckpt.load_checkpoint(files.best_checkpoint)["models"]["g1"]
    assert all(torch.equal(exported[k], chosen[k]) for k in exported)
    last = ckpt.load_checkpoint(files.checkpoint(8))["models"]["g1"]
    assert all(torch.equal(exported[k], last[k]) for k in exported) == (best["step"] == 8)
    run = mlflow.get_run(summary.mlflow_run_id)
    assert run.data.tags["selected.rule"] == "best_mask_ssim" and run.data.tags["selected.step"] == str(best["step"])
    curve = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_mask_ssim")
    assert [m.step for m in curve] == [0, 2, 4, 6, 8]


def test_weight_average_is_what_validation_scores_selection_keeps_and_g1_exports(tiny_manifests, tmp_path, monkeypatch):
    from pg2_pipeline.runtime import Runtime
    from pg2_pipeline.train.validation import Validator

    root = project_copy(tiny_manifests, tmp_path / "p", validate_every=2, select="best_mask_ssim", ema_decay=0.9)
    paths = ProjectPaths(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    summary = train_stage("stage1", load_params(paths.params_file), paths, progress=False)
    files = paths.stage("stage1")
    last = ckpt.load_checkpoint(files.checkpoint(8))["models"]
    assert set(last) == {"g1", "g1_ema"}
    assert any(not torch.equal(last["g1"][k], last["g1_ema"][k]) for k in last["g1"])
    best = ckpt.load_checkpoint(files.best_checkpoint)["models"]
    exported = load_file(files.weights("g1"))
    assert all(torch.equal(exported[k], best["g1_ema"][k]) for k in exported)  # the average, not the raw weights
    # the validation curve scored the average: rescoring the step-8 average gives the same numbers
    chosen = summary.precision  # as the run scored it (params, or the mode precision auto chose)
    rt = Runtime.resolve("cpu", chosen["precision"], chosen["channels_last"])
    g1 = ckpt.load_model(files, "g1").to(memory_format=rt.memory_format)
    g1.load_state_dict(last["g1_ema"])

    def average(b):
        with rt.autocast():
            return g1.eval()(b.condition, b.target_map).float()

    rescored = Validator(paths, torch.device("cpu"))(average)
    validation = json.loads(files.validation.read_text())
    assert validation[-1]["step"] == 8
    assert rescored == pytest.approx({k: validation[-1][k] for k in rescored}, abs=1e-5)
    assert summary.selected.step in {2, 4, 6, 8}


def test_changed_params_never_resume_a_stale_checkpoint(tiny_manifests, tmp_path):
    root = project_copy(tiny_manifests, tmp_path / "p")
    paths = ProjectPaths(root)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    try:
        train_stage("stage1", load_params(paths.params_file), paths, progress=False)
        set_params(
            root,
            stage1={
                "profiles": {
                    "tiny": {
                        "steps": 4,
                        "batch_size": 4,
                        "base_channels": 8,
                        "checkpoint_every": 2,
                        "sample_every": 4,
                        "log_every": 1,
                        "lr": 1e-4,
                    }
                }
            },
        )
        summary = train_stage("stage1", load_params(paths.params_file), paths, progress=False)
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    assert summary.resumed_from_step == 0
    assert [s for s, _ in ckpt.checkpoints(paths.stage("stage1"))] == [2, 4]


def test_nan_loss_stops_with_step_and_last_checkpoint(tiny_manifests, tmp_path, monkeypatch):
    root = project_copy(tiny_manifests, tmp_path / "p", lr=1e30, precision="fp32")
    paths = ProjectPaths(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    with pytest.raises(TrainingDivergedError) as err:
        train_stage("stage1", load_params(paths.params_file), paths, progress=False)
    message = str(err.value)
    assert "stage1: loss_G1 is" in message and "at step" in message and "last good checkpoint" in message
    step = int(message.split("at step ")[1].split(";")[0])
    expected = "none" if step <= 2 else str(paths.stage("stage1").checkpoints)
    assert expected in message
    import mlflow

    run = mlflow.search_runs(experiment_names=["pg2"], output_format="list")[0]
    assert run.info.status == "FAILED"


def test_checkpoints_load_without_pickle_and_describe_themselves(tiny_manifests, tmp_path, monkeypatch):
    root = project_copy(tiny_manifests, tmp_path / "p")
    paths = ProjectPaths(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    summary = train_stage("stage1", load_params(paths.params_file), paths, progress=False)
    step, path = ckpt.checkpoints(paths.stage("stage1"))[-1]
    state = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert state["step"] == step == 8 and state["stage"] == "stage1"
    assert set(state["models"]) == {"g1"} and set(state["optimizers"]) == {"g1"}
    assert state["params"]["stage1"]["steps"] == 8 and state["params"]["base"]["seed"] == 1234
    assert state["code_version"]["code_hash"] == code_hash("stage1") and "git_commit" in state["code_version"]
    assert isinstance(state["rng"]["torch"], torch.Tensor) and len(state["history"]) == 8

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = path.with_name("step-00000009.pt")
    torch.save({"format": ckpt.CHECKPOINT_FORMAT, "step": 9, "payload": Evil()}, evil)
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        ckpt.load_checkpoint(evil)
    _, best, stale = ckpt.latest_matching(paths.stage("stage1"), state["fingerprint"])
    assert best["step"] == 8 and evil in stale  # never resumed from

    # MLflow: one run per stage, tagged, with losses, grids and weights
    import mlflow

    run = mlflow.get_run(summary.mlflow_run_id)
    assert run.info.run_name == "stage1" and run.info.status == "FINISHED"
    assert {"dagster.run_id", "git.commit", "manifest.hash"} <= set(run.data.tags)
    assert run.data.tags["manifest.hash"] == summary.manifest_hash
    assert run.data.params["stage1.steps"] == "8"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss_G1")
    assert [m.step for m in history] == list(range(1, 9))
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"samples", "weights", "losses.png"} <= artifacts
    assert paths.stage("stage1").latest_sample.is_file()


def test_each_project_logs_to_its_own_store_in_one_process(tiny_manifests, tmp_path, monkeypatch):
    """MLflow 3 exports set_tracking_uri() as $MLFLOW_TRACKING_URI; if that leaked, the second
    project (and every `dvc repro` started afterwards) would log into the first one's store."""
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    summaries = {}
    for name in ("a", "b"):
        root = project_copy(tiny_manifests, tmp_path / name, steps=2, checkpoint_every=2, sample_every=2)
        paths = ProjectPaths(root)
        summaries[name] = (root, train_stage("stage1", load_params(paths.params_file), paths, progress=False))
        assert "MLFLOW_TRACKING_URI" not in os.environ
    for root, summary in summaries.values():
        assert summary.tracking_uri == f"sqlite:///{root.resolve() / 'mlflow.db'}"
        assert MlflowClient(summary.tracking_uri).get_run(summary.mlflow_run_id).info.status == "FINISHED"
