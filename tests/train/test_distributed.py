"""torchrun + DistributedDataParallel on CPU (gloo), tiny profile: 2 ranks × batch 4 train the
same weights as 1 process × batch 8 (stage 1 and stage 2, D's BatchNorm synchronised), a killed
rank fails the run naming it and a rerun resumes (also on another number of processes), a
2-"node" run on localhost completes, and only rank 0 records anything."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pg2_pipeline import summaries
from pg2_pipeline.config import load_params
from pg2_pipeline.distributed import DistributedTrainingError
from pg2_pipeline.models import io
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.train.loop import run_stage, training_command
from pg2_pipeline.train.stage1 import Stage1

from conftest import set_params

pytestmark = pytest.mark.slow
# Summation order differs between one process and an all-reduce: fp32 weights after a few Adam
# steps agree to this absolute tolerance (measured max |Δ| ~1e-7).
ATOL = 2e-5
TINY = {"batch_size": 8, "precision": "fp32", "channels_last": False, "checkpoint_every": 2, "sample_every": 100,
        "log_every": 1, "validate_every": 0}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project(src: Path, dest: Path, **stage) -> Path:
    """A copy of the tiny project through the manifests, with a few training steps."""
    skip = ["stage1", "stage2", "evaluation", "mlflow.db", "mlartifacts"]
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*skip))
    s1 = {"steps": 6, "base_channels": 8, **TINY, **stage.get("stage1", {})}
    s2 = {"steps": 6, "base_channels": 8, "d_base_channels": 8, **TINY, **stage.get("stage2", {})}
    set_params(dest, stage1={"profiles": {"tiny": s1}}, stage2={"profiles": {"tiny": s2}})
    return dest


def weights(root: Path, stage: str, name: str) -> dict[str, torch.Tensor]:
    return load_file(ProjectPaths(root).stage(stage).weights(name))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def run(root: Path, stage: str) -> summaries.TrainingSummary:
    """The asset's path: ``run_stage`` (torchrun when params ask for several processes)."""
    from pg2_pipeline.train.stages import STAGES

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    try:
        return run_stage(STAGES[stage], load_params(root / "params.yaml"), ProjectPaths(root))
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]


@pytest.fixture(scope="module")
def single(tiny_manifests, tmp_path_factory):
    """One process × batch 8: stage 1, then stage 2 on its G1."""
    root = project(tiny_manifests, tmp_path_factory.mktemp("single") / "p")
    run(root, "stage1")
    run(root, "stage2")
    return root


@pytest.fixture(scope="module")
def two_ranks(tiny_manifests, tmp_path_factory):
    """2 processes × batch 4 (torchrun, gloo)."""
    two = {"nproc_per_node": 2}
    root = project(tiny_manifests, tmp_path_factory.mktemp("ranks") / "p", stage1=two, stage2=two)
    summary = run(root, "stage1")
    run(root, "stage2")
    return root, summary


def test_two_ranks_train_the_weights_of_one_process(single, two_ranks):
    root, summary = two_ranks
    assert summary.processes == 2 and summary.batch_size == 8
    assert max_diff(weights(single, "stage1", "g1"), weights(root, "stage1", "g1")) < ATOL
    # stage 2 reads each run's own G1; D's BatchNorm statistics are the global batch's
    assert max_diff(weights(single, "stage2", "g2"), weights(root, "stage2", "g2")) < ATOL
    # D: every parameter but the conv biases that feed a BatchNorm (BatchNorm subtracts them, so
    # their gradient is float noise that Adam scales to full-size steps: they never matter) and
    # the running means that absorb them (D always runs on batch statistics); and D's logits on a
    # fixed batch, which neither can change
    d_single, d_ranks = weights(single, "stage2", "d"), weights(root, "stage2", "d")
    before_bn = {f"features.{i - 1}.bias" for i, _ in _batchnorms(d_single)} | {k for _, k in _batchnorms(d_single)}
    assert (
        max_diff(
            {k: v for k, v in d_single.items() if k not in before_bn},
            {k: v for k, v in d_ranks.items() if k not in before_bn},
        )
        < ATOL
    )
    x = torch.randn(8, 3, 128, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = [io.load_model(ProjectPaths(r).stage("stage2"), "d").train()(x) for r in (single, root)]
    assert float((logits[0] - logits[1]).abs().max()) < 1e-3 * float(logits[0].abs().max())
    losses_1 = summaries.read(
        ProjectPaths(single).stage("stage2").summary, summaries.TrainingSummary, "stage2"
    ).final_losses
    losses_2 = summaries.read(
        ProjectPaths(root).stage("stage2").summary, summaries.TrainingSummary, "stage2"
    ).final_losses
    assert losses_1["loss_D"] == pytest.approx(losses_2["loss_D"], abs=1e-4)  # averaged over the ranks


def test_only_rank_zero_records(two_ranks):
    import mlflow

    root, _ = two_ranks
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("pg2").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["stage1", "stage2"]  # one run per stage, not per rank
    assert {r.data.params["launch.nproc_per_node"] for r in runs} == {"2"}
    assert [s for s, _ in io.checkpoints(ProjectPaths(root).stage("stage1"))] == [2, 4, 6]


def test_killed_rank_fails_the_run_by_name_and_a_rerun_resumes(two_ranks, tiny_manifests, tmp_path, monkeypatch):
    reference, _ = two_ranks
    root = project(tiny_manifests, tmp_path / "p", stage1={"nproc_per_node": 2})
    marker = f"PG2_KILL_TEST_{os.getpid()}"
    monkeypatch.setenv(marker, "1")  # inherited by torchrun's workers: how the test finds them
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    outcome: list[BaseException | None] = []

    def train_in_background() -> None:
        try:
            run_stage(Stage1, load_params(root / "params.yaml"), ProjectPaths(root))
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=train_in_background)
    thread.start()
    files = ProjectPaths(root).stage("stage1")
    deadline = time.time() + 240
    while not io.checkpoints(files) and time.time() < deadline and thread.is_alive():
        time.sleep(0.02)
    rank1 = [pid for pid in _pids_with(marker) if _environ(pid).get("RANK") == "1"]
    assert rank1, "rank 1 was not running when the first checkpoint appeared"
    os.kill(rank1[0], signal.SIGKILL)
    thread.join(timeout=180)
    error = outcome[0]
    assert isinstance(error, DistributedTrainingError), error
    assert "stage1: rank 1 (local rank 1) exited with code -9; every rank was stopped" in str(error)
    done = [s for s, _ in io.checkpoints(files)]
    assert done and max(done) < 6

    summary = run(root, "stage1")  # the rerun resumes, on 2 ranks again
    assert summary.resumed_from_step == max(done)
    assert max_diff(weights(reference, "stage1", "g1"), weights(root, "stage1", "g1")) == 0.0  # bit for bit


def test_checkpoint_of_two_ranks_resumes_on_one(two_ranks, single, tiny_manifests, tmp_path):
    two, _ = two_ranks
    root = project(tiny_manifests, tmp_path / "p")
    files = ProjectPaths(root).stage("stage1")
    files.checkpoints.mkdir(parents=True)
    shutil.copy(ProjectPaths(two).stage("stage1").checkpoint(2), files.checkpoint(2))  # written by 2 ranks
    summary = run(root, "stage1")  # params: 1 process
    assert summary.resumed_from_step == 2 and summary.processes == 1
    assert max_diff(weights(single, "stage1", "g1"), weights(root, "stage1", "g1")) < ATOL


def test_two_nodes_on_localhost(single, tiny_manifests, tmp_path):
    port = free_port()
    root = project(tiny_manifests, tmp_path / "p", stage1={"nnodes": 2, "rdzv_endpoint": f"127.0.0.1:{port}"})
    params = load_params(root / "params.yaml")
    cmd = training_command("stage1", params.stage1, ProjectPaths(root))
    assert "--nnodes=2" in cmd and "--rdzv-backend=c10d" in cmd and f"--rdzv-endpoint=127.0.0.1:{port}" in cmd
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)
    ]
    outputs = [n.communicate(timeout=300)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    summary = summaries.read(ProjectPaths(root).stage("stage1").summary, summaries.TrainingSummary, "stage1")
    assert summary.processes == 2
    assert max_diff(weights(single, "stage1", "g1"), weights(root, "stage1", "g1")) < ATOL


def _batchnorms(state: dict) -> list[tuple[int, str]]:
    """(index, key) of the BatchNorm layers of a D state dict (their running_mean buffers)."""
    return [(int(k.split(".")[1]), k) for k in state if k.endswith(".running_mean")]


def _pids_with(marker: str) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    out.append(int(proc.name))
            except OSError:
                continue
    return out


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
