"""Stage 2's validation FID and the ``best_fid_keep_ssim`` rule on the tiny twin: every
validation step has an FID against the evaluation's real set, the exported step is the lowest FID
among the steps that keep G1's SSIM and do not raise its LPIPS, and the real set's statistics are
left in the feature cache for the evaluation."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from pg2_pipeline.config import ParamsError, load_params
from pg2_pipeline.evaluate.feature_cache import real_stats
from pg2_pipeline.evaluate.fid import InceptionFeatures
from pg2_pipeline.evaluate.real_set import training_images
from pg2_pipeline.evaluate.report import curves_csv, curves_picture, validation_curves
from pg2_pipeline.models import io as ckpt
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.train.stages import train_stage

from conftest import REPO, set_params, set_profile


def test_fid_rule_exports_the_lowest_validation_fid_that_keeps_g1(tiny_trained, tmp_path, monkeypatch):
    root = tmp_path / "p"
    shutil.copytree(
        tiny_trained,
        root,
        ignore=shutil.ignore_patterns("stage2", "evaluation", "mlflow.db", "mlartifacts", ".pg2_cache"),
    )
    # a loose tolerance, so that trained steps are candidates on a 10-step run
    set_profile(root, "stage2", steps=10, validate_every=2, validate_fid=True, select="best_fid_keep_ssim",
                select_ssim_tolerance=0.05)  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    summary = train_stage("stage2", params, paths, progress=False)

    files = paths.stage("stage2")
    history = json.loads(files.validation.read_text())
    reference = summary.validation_reference
    assert [v["step"] for v in history] == [0, 2, 4, 6, 8, 10]
    assert all(isinstance(v["fid"], float) and v["fid"] > 0 for v in history)
    assert history[0] == {"step": 0, **reference}  # a zero-initialised G2 starts as G1: scored once
    candidates = [v for v in history if v["ssim"] >= reference["ssim"] - 0.05 and v["lpips"] <= reference["lpips"]]
    best = min(candidates, key=lambda v: v["fid"])  # step 0 (G1 itself) is always a candidate
    assert summary.selected.rule == "best_fid_keep_ssim" and summary.selected.metric == "fid"
    assert (summary.selected.step, summary.selected.value) == (best["step"], best["fid"])
    exported = load_file(files.weights("g2"))
    chosen = ckpt.load_checkpoint(files.best_checkpoint)["models"]["g2"]
    assert all(torch.equal(exported[k], chosen[k]) for k in exported)

    # the report's curves carry the FID of stage 2's validations (none for stage 1)
    points = validation_curves(paths)
    rows = [line.split(",") for line in curves_csv(points).splitlines()]
    assert rows[0][-1] == "fid" and all(r[-1] == "" for r in rows[1:] if r[1] == "stage1")
    assert [float(r[-1]) for r in rows[1:] if r[1] == "stage2"] == [v["fid"] for v in history]
    assert curves_picture(points).shape[1] > 1_400  # 4 columns (3 without FID: 1,210 px)

    # the evaluation's real set (same images, same protocol) is a feature-cache hit now
    features = InceptionFeatures()
    cfg = params.evaluation
    _, info = real_stats(
        lambda: training_images(paths, cfg.fid_real_images, params.base.seed),
        features,
        paths.local_cache.features,
        log=pytest.fail,
    )
    assert info.status == "hit"


def test_fid_rule_needs_validation_fid(tmp_path):
    shutil.copy2(REPO / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, base={"profile": "tiny"})
    set_profile(tmp_path, "stage2", validate_fid=False, select="best_fid_keep_ssim")
    with pytest.raises(ParamsError, match="stage2.validate_fid: true"):
        load_params(tmp_path / "params.yaml")
