"""The evaluation stage and the registry on a tiny trained project: the table with baselines,
per-pair scores, pictures, curves over checkpoints, the champion gate both ways, and loading the
registered generator in a fresh process."""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pg2_pipeline import summaries
from pg2_pipeline.config import load_params
from pg2_pipeline.evaluate.stage import champion_gate
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.registry.publish import CHAMPION, publish_evaluation


@pytest.fixture(scope="module")
def evaluated(tiny_evaluated, tmp_path_factory):
    """A private copy (this module registers model versions in its MLflow store)."""
    src, summary = tiny_evaluated
    root = tmp_path_factory.mktemp("eval") / "project"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    return root, summary


def test_metrics_table_has_every_method_and_protocol(evaluated):
    root, summary = evaluated
    paths = ProjectPaths(root)
    metrics = summaries.read_metrics(paths.evaluation.metrics)
    assert metrics == summary.metrics and metrics.pairs == 32
    assert summaries.read(paths.evaluation.summary, summaries.EvaluationSummary) == summary
    for method in ("stage2", "stage1", "copy"):
        m = metrics.method(method)
        assert {
            "ssim",
            "ssim_pg2",
            "ssim_gaussian",
            "ssim_win51",
            "mask_ssim",
            "psnr",
            "l1",
            "lpips",
            "fid",
            "pckh",
            "mask_ssim_condmask",
            "ssim_to_condition",
            "l1_to_condition",
            "detection_rate",
            "pckh_detected",
            "detection_rate_real_targets",
        } <= set(m)
        assert 0 < m["ssim"] <= 1 and 0 < m["mask_ssim"] <= 1 and m["fid"] > 0 and 0 <= m["pckh"] <= 1
        assert m["ssim"] == m["ssim_pg2"]  # the default protocol
        assert m["is"] == m["mask_is"] == "unavailable: no Inception logits weights"
        assert 0 <= m["detection_rate"] <= 1 and m["mask_ssim_condmask"] != m["mask_ssim"]
    # the copy detector: the copy baseline is its own condition image
    assert metrics.copy["ssim_to_condition"] == 1.0 and metrics.copy["l1_to_condition"] == 0.0
    assert metrics.stage1["ssim_to_condition"] < 1.0
    table = paths.evaluation.table.read_text()
    assert (
        "| PG² (stage 1 + 2) |" in table
        and "| stage 1 only (G1) |" in table
        and "| copy the condition image |" in table
    )
    assert "unavailable" in table and "`pg2` protocol" in table
    assert "BlazePose, not comparable to OpenPose-based papers" in table
    assert (
        "| method | SSIM to I_A | L1 to I_A | mask-SSIM, condition mask | BlazePose detection rate | PCKh on detected |"
        in table
    )


def test_per_pair_scores_and_pictures(evaluated):
    root, _ = evaluated
    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    per_pair = pq.read_table(paths.evaluation.per_pair)
    assert per_pair.num_rows == 32
    assert {"pair_id", "from_id", "to_id", "stage2_mask_ssim", "copy_ssim_pg2", "stage1_lpips"} <= set(
        per_pair.column_names
    )
    assert np.isclose(
        per_pair.column("stage2_mask_ssim").to_numpy().mean(),
        summaries.read_metrics(paths.evaluation.metrics).stage2["mask_ssim"],
        atol=1e-4,
    )
    for picture in (paths.evaluation.examples, paths.evaluation.curves):
        assert picture.stat().st_size > 5_000
    curves = paths.evaluation.curves_csv.read_text().splitlines()
    assert curves[0] == "step,stage,ssim,mask_ssim,l1,lpips,ssim_to_condition,l1_to_condition,fid"
    rows = [line.split(",") for line in curves[1:]]
    assert all(len(r) == 9 and r[-1] == "" for r in rows)  # no validation FID in the tiny profile
    # the validation records of both stages: step 0, every validate_every, the last step
    s1, s2 = params.stage1, params.stage2
    expected = [("stage1", s) for s in range(0, s1.steps + 1, s1.validate_every)]
    expected += [("stage2", s1.steps + s) for s in range(0, s2.steps + 1, s2.validate_every)]
    assert [(r[1], int(r[0])) for r in rows] == expected


def test_champion_gate_both_ways_and_loading_in_a_fresh_process(evaluated, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    root, summary = evaluated
    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    name = params.mlflow.registered_model

    def with_stage2_mask_ssim(value: float) -> summaries.EvaluationSummary:
        metrics = dataclasses.replace(summary.metrics, stage2={**summary.metrics.stage2, "mask_ssim": value})
        return dataclasses.replace(summary, metrics=metrics, gate=champion_gate(metrics))

    copy = summary.metrics.copy["mask_ssim"]
    first = publish_evaluation(params, paths, with_stage2_mask_ssim(copy - 0.01))
    assert not first.champion and "registered without the champion alias" in first.reason
    client = MlflowClient()
    with pytest.raises(Exception, match="alias"):
        client.get_model_version_by_alias(name, CHAMPION)
    assert client.get_model_version(name, first.version).tags["champion_gate"] == first.reason

    second = publish_evaluation(params, paths, with_stage2_mask_ssim(copy + 0.01))
    assert second.champion and int(second.version) == int(first.version) + 1
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == second.version
    assert summaries.read(paths.evaluation.registration, summaries.Registration) == second

    # the logged model holds source code and safetensors: no pickle anywhere
    local = mlflow.artifacts.download_artifacts(f"models:/{name}@{CHAMPION}")
    files = [os.path.join(d, f) for d, _, fs in os.walk(local) for f in fs]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt"))]
    assert any(f.endswith("g1.safetensors") for f in files)
    import yaml

    flavor = yaml.safe_load(Path(local, "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"  # a model from code, no pickled object

    # a fresh process with nothing of ours imported loads it by alias and generates
    script = f"""
import numpy as np, mlflow
mlflow.set_tracking_uri("sqlite:///{root}/mlflow.db")
model = mlflow.pyfunc.load_model("models:/{name}@{CHAMPION}")
yx = np.full((2, 18, 2), -1, np.float32); yx[:, :14] = np.stack([np.linspace(10, 120, 14), np.full(14, 32)], -1)
out = model.predict({{"condition": np.zeros((2, 128, 64, 3), np.uint8), "target_keypoints": yx}})
print(out.shape, out.dtype, model.metadata.metadata["image_size"])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2, 128, 64, 3) uint8 [128, 64]" in proc.stdout
