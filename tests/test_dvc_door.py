"""The DVC door, end to end on the tiny profile, in a fresh git clone of the project:
`dvc repro` runs the chain, a second run does nothing, a stage-2 param reruns stage2 and
evaluation only, `dvc exp run -S` works and `dvc exp show` lists the metrics, `dvc metrics diff`
compares two runs; DVC-started runs land in the project's Dagster instance; the registered
model loads in a fresh process."""

import json
import os
import subprocess
import sys

import pytest
from dagster import AssetKey, DagsterInstance

from conftest import VENV_BIN, copy_project, run, set_params

DVC = str(VENV_BIN / "dvc")
STAGES = ("twin", "image_index", "keypoints", "pairs", "manifests", "stage1", "stage2", "evaluation")
pytestmark = pytest.mark.slow


def ran(out: subprocess.CompletedProcess) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in out.stdout]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("dvc") / "project")
    home = root / ".dagster_home"
    env = {
        "DAGSTER_HOME": str(home),
        "PG2_PROJECT_DIR": str(root),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    saved = {k: os.environ.get(k) for k in (*env, "MLFLOW_TRACKING_URI")}
    os.environ.update(env)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the project's own store (params), as for a user
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        run(cmd, cwd=root)
    first = run([DVC, "repro"], cwd=root, timeout=900)
    yield root, first
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_repro_runs_the_whole_chain_then_nothing(repo):
    root, first = repo
    assert ran(first) == list(STAGES)
    metrics = json.loads((root / "assets/evaluation/metrics.json").read_text())
    assert metrics["stage2"]["mask_ssim"] > metrics["copy"]["mask_ssim"]  # the tiny model earned @champion
    second = run([DVC, "repro"], cwd=root)
    assert ran(second) == [] and "up to date" in (second.stdout + second.stderr)


def test_dvc_runs_are_recorded_in_the_project_dagster_instance(repo):
    root, first = repo
    instance = DagsterInstance.get()
    assert instance.root_directory == str(root / ".dagster_home")
    runs = [r for r in instance.get_runs() if r.tags.get("pg2/started_by") == "dvc"]
    assert len(runs) >= len(STAGES)
    for name in STAGES:
        assert instance.get_latest_materialization_event(AssetKey(name)) is not None


def test_ingest_only_param_reruns_ingest_and_nothing_downstream(repo):
    root, _ = repo
    set_params(root, image_index={"max_quarantine_fraction": 0.05})
    out = run([DVC, "repro"], cwd=root)
    assert ran(out) == ["image_index"]  # the index it writes is unchanged, so nothing after reruns
    run(["git", "checkout", "params.yaml"], cwd=root)
    run([DVC, "repro"], cwd=root)


def test_stage2_param_via_exp_run_reruns_stage2_and_evaluation_only(repo):
    root, _ = repo
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "baseline run"], cwd=root)
    out = run([DVC, "exp", "run", "-S", "stage2.lambda_l1=20"], cwd=root, timeout=900)
    assert ran(out) == ["stage2", "evaluation"]  # nothing before stage2 reruns
    show = run([DVC, "exp", "show", "--no-pager", "--csv"], cwd=root).stdout
    header = show.splitlines()[0].split(",")
    assert "stage2.mask_ssim" in header and "copy.mask_ssim" in header and "stage2.lambda_l1" in header
    assert ",20," in show or ",20.0," in show  # the experiment's param value
    diff = run([DVC, "metrics", "diff", "--md"], cwd=root).stdout  # workspace (experiment) vs HEAD
    assert "stage2.mask_ssim" in diff and "metrics.json" in diff


def test_registered_model_loads_in_a_fresh_process(repo):
    root, _ = repo
    registration = json.loads((root / "assets/evaluation/report/registration.json").read_text())
    uri = f"models:/{registration['name']}@champion" if registration["champion"] else registration["model_uri"]
    script = f"""
import numpy as np, mlflow
mlflow.set_tracking_uri("sqlite:///{root}/mlflow.db")
model = mlflow.pyfunc.load_model("{uri}")
h, w = model.metadata.metadata["image_size"]
condition, keypoints = np.zeros((1, h, w, 3), np.uint8), np.full((1, 18, 2), -1, np.float32)
out = model.predict({{"condition": condition, "target_keypoints": keypoints}})
print("generated", out.shape, out.dtype)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "generated (1, 128, 64, 3) uint8" in proc.stdout
