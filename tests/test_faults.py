"""kill -9 at the worst moments (tests/kill_at.py: a temporary file cut to half, then SIGKILL
before its rename; or SIGKILL right after the registry created a version). After each kill the
files under their final names are whole (no reader sees a half-written file), and a rerun
through the same door completes with the outputs of an uninterrupted run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from pg2_pipeline import summaries
from pg2_pipeline.models import io as ckpt
from pg2_pipeline.paths import SPLITS, ProjectPaths

from conftest import REPO, VENV_BIN, set_params

pytestmark = pytest.mark.slow
KILL_AT = str(REPO / "tests" / "kill_at.py")
STAGE1 = {"steps": 6, "batch_size": 4, "base_channels": 8, "checkpoint_every": 2, "sample_every": 6, "log_every": 2,
          "validate_every": 0, "select": "last", "precision": "fp32", "channels_last": False}  # fmt: skip


def project_copy(source: Path, dest: Path, *skip: str) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*skip, ".locks"))
    return dest


def pg2(root: Path, *args: str, kill: tuple[str, str] | None = None) -> subprocess.CompletedProcess:
    """`pg2 ARGS` in ``root`` (its own Dagster instance and MLflow store); ``kill``: (mode,
    where) for kill_at.py."""
    env = {**os.environ, "PG2_PROJECT_DIR": str(root), "DAGSTER_HOME": str(root / ".dagster_home")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    for key in ("MLFLOW_TRACKING_URI", "PG2_HELD_LOCKS"):
        env.pop(key, None)
    cmd = [sys.executable, *((KILL_AT, *kill) if kill else ()), "-m", "pg2_pipeline", *args]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    expected = -9 if kill else 0
    assert proc.returncode == expected, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def unfinished(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def stage1_project(tiny_manifests, tmp_path_factory) -> Path:
    """The manifests, with stage 1 set to 6 steps (checkpoints at 2, 4, 6), and an empty MLflow
    store (its tables made once, not by every copy)."""
    skip = ("stage1", "stage2", "evaluation", "mlflow.db", "mlartifacts")
    root = project_copy(tiny_manifests, tmp_path_factory.mktemp("faults") / "base", *skip)
    set_params(root, stage1={"profiles": {"tiny": STAGE1}})
    setup = "import sys; from pathlib import Path; from pg2_pipeline import tracking, config; " \
            "root = Path(sys.argv[1]); tracking.setup(config.load_params(root / 'params.yaml'), root)"  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([sys.executable, "-c", setup, str(root)], env=env, check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def killed_at_export(stage1_project, tmp_path_factory) -> Path:
    """Stage 1 killed while it wrote its exported G1 — after its whole final checkpoint (step 6),
    whose G1 is therefore exactly the uninterrupted run's."""
    root = project_copy(stage1_project, tmp_path_factory.mktemp("faults") / "killed_at_export")
    pg2(root, "materialize", "stage1", kill=("write", "g1.safetensors"))
    return root


def uninterrupted_g1(killed_at_export: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(ProjectPaths(killed_at_export).stage("stage1").checkpoint(6))["models"]["g1"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kill_during_a_checkpoint_write_resumes_from_the_last_whole_one(
    stage1_project, killed_at_export, tmp_path, monkeypatch
):
    from dagster import DagsterInstance, DagsterRunStatus

    root = project_copy(stage1_project, tmp_path / "p")
    files = ProjectPaths(root).stage("stage1")
    pg2(root, "materialize", "stage1", kill=("write", "step-00000004.pt"))
    assert [s for s, _ in ckpt.checkpoints(files)] == [2]  # the final names hold whole files only
    assert ckpt.load_checkpoint(files.checkpoint(2))["step"] == 2
    [half] = unfinished(files.folder)
    assert half.name.startswith(".step-00000004.pt.") and half.stat().st_size > 0

    out = pg2(root, "materialize", "stage1").stdout
    dead = re.search(
        r"stage1: taking over a stale lock left by Dagster run (\S+), pid \d+ .*: that process is gone", out
    )
    assert dead, out
    assert "stage1: removed 1 unfinished temporary file(s) of a killed write: checkpoints/.step-00000004.pt." in out
    assert "stage1: resuming from step 2 (step-00000002.pt)" in out
    assert not unfinished(files.folder)
    assert same(load_file(files.weights("g1")), uninterrupted_g1(killed_at_export))
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster_home"))
    # the killed command's Dagster run no longer looks alive (and no longer queues the UI's)
    assert DagsterInstance.get().get_run_by_id(dead.group(1)).status == DagsterRunStatus.FAILURE


def test_kill_during_the_weight_export_leaves_no_half_file_and_the_rerun_exports(killed_at_export, tmp_path):
    root = project_copy(killed_at_export, tmp_path / "p")
    files = ProjectPaths(root).stage("stage1")
    assert not files.weights("g1").exists() and [s for s, _ in ckpt.checkpoints(files)] == [2, 4, 6]
    assert [p.name.split(".safetensors.")[0] for p in unfinished(files.folder)] == [".g1"]

    out = pg2(root, "materialize", "stage1").stdout
    assert "stage1: resuming from step 6 (step-00000006.pt)" in out
    assert same(load_file(files.weights("g1")), uninterrupted_g1(killed_at_export))
    assert summaries.read(files.summary, summaries.TrainingSummary).resumed_from_step == 6


def test_kill_during_the_parquet_writes_of_pairs_and_manifests_keeps_whole_tables(tiny_manifests, tmp_path):
    root = project_copy(tiny_manifests, tmp_path / "p", "stage1", "stage2", "evaluation", "mlflow.db", "mlartifacts")
    paths = ProjectPaths(root)
    tables = [paths.pairs_table, paths.pairs_unused_standard, *(paths.manifest_table(s) for s in SPLITS)]
    before = {t: pq.read_table(t) for t in tables}

    pg2(root, "materialize", "pairs", "manifests", kill=("write", "pairs.parquet"))
    pg2(root, "materialize", "pairs", "manifests", kill=("write", "train.parquet"))
    assert len(unfinished(paths.asset_dir("manifests"))) == 1
    for table in tables:  # every reader in between found a whole table (the previous one)
        assert pq.read_table(table).equals(before[table]), table

    pg2(root, "materialize", "pairs", "manifests")
    assert not unfinished(paths.asset_dir("pairs")) and not unfinished(paths.asset_dir("manifests"))
    for table in tables:
        assert pq.read_table(table).equals(before[table]), table


REGISTER = """
from pg2_pipeline import summaries
from pg2_pipeline.config import load_params
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.registry.publish import publish_evaluation
paths = ProjectPaths.discover()
summary = summaries.read(paths.evaluation.summary, summaries.EvaluationSummary)
print(publish_evaluation(load_params(paths.params_file), paths, summary))
"""


def test_kill_during_registration_then_the_rerun_registers_one_version(tiny_evaluated, tmp_path):
    from mlflow import MlflowClient

    from pg2_pipeline.config import load_params

    root = project_copy(tiny_evaluated[0], tmp_path / "p", "mlflow.db", "mlartifacts")
    paths = ProjectPaths(root)
    run = [sys.executable, "-c", REGISTER]
    env = {**os.environ, "PG2_PROJECT_DIR": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    killed = subprocess.run([sys.executable, KILL_AT, "after", "mlflow:register_model", *run[1:]],
                            cwd=root, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert not paths.evaluation.registration.exists()
    params = load_params(paths.params_file)
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")  # the project's store (params mlflow.tracking_uri)
    name = params.mlflow.registered_model
    assert [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] == ["1"]

    rerun = subprocess.run(run, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    gate = summaries.read(paths.evaluation.summary, summaries.EvaluationSummary).gate
    registration = summaries.read(paths.evaluation.registration, summaries.Registration)
    assert registration == summaries.Registration(name, "1", f"models:/{name}/1", gate.passed, gate.reason)
    [version] = client.search_model_versions(f"name = '{name}'")  # one model, one version
    assert version.tags["champion_gate"] == gate.reason
    if gate.passed:
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
