"""``bench/gpu_check.py --device cpu --quick``: every section of the GPU readiness check runs on a
CPU and reports what it measured (the GPU figures come from a GPU machine; see the README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

STAGES, PRECISIONS, QUICK_BATCHES = ("stage1", "stage2"), ("bf16", "fp32"), (2, 4)


@pytest.mark.slow
def test_gpu_check_runs_every_section_on_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "PG2_PROJECT_DIR")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--quick", "--threads", "1"]
    proc = subprocess.run(
        [*cmd, "--work-dir", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON on stdout (exit {proc.returncode})\n--- stderr\n{proc.stderr[-4000:]}")
    failed = {name: s.get("error") for name, s in report["sections"].items() if not s["ok"]}
    assert proc.returncode == 0 and not failed, f"failed sections: {failed}\n--- stderr\n{proc.stderr[-3000:]}"
    assert (report["device"], report["quick"], report["ok"]) == ("cpu", True, True)
    assert report["work_dir"] is None and not list(tmp_path.iterdir()), "the work dir stays only after a failure"
    sections = report["sections"]

    rows = sections["steps"]["results"]
    assert sorted((r["stage"], r["precision"], r["batch"]) for r in rows) == sorted(
        (s, p, b) for s in STAGES for p in PRECISIONS for b in QUICK_BATCHES
    )
    for r in rows:
        assert r["images_per_s"] > 0 and r["gflop_per_image"] > 0 and r["achieved_tflop_per_s"] > 0, r
        assert r["finite"], r
        assert r["mfu"] is None and r["mfu_reason"], "a CPU has no peak table: MFU is null with its reason"
        assert r["images_per_s"] == pytest.approx(r["batch"] / r["s_per_iter"], rel=0.01)
    for stage in STAGES:  # model FLOPs belong to the networks: one per-image figure at any batch or precision
        flops = [r["gflop_per_image"] for r in rows if r["stage"] == stage]
        assert max(flops) - min(flops) <= 0.01 * max(flops), (stage, flops)

    pipeline = sections["pipeline"]
    assert pipeline["ran_on"] == {"stage1": "cpu", "stage2": "cpu", "evaluation": "cpu"}
    assert pipeline["seconds_end_to_end"] > 0

    loader = sections["loader"]["results"]
    assert [r["batch"] for r in loader] == list(QUICK_BATCHES)
    for r in loader:
        demand = max(s["images_per_s"] for s in rows if s["batch"] == r["batch"])
        assert r["images_per_s"] > 0 and r["step_demand_images_per_s"] == demand
        assert r["ratio_to_step"] == pytest.approx(r["images_per_s"] / demand, rel=0.02)

    assert sections["evaluation"]["pairs_per_s"] > 0
    torchrun = sections["torchrun"]
    assert (torchrun["backend"], torchrun["device"], torchrun["resumed_from_step"]) == ("gloo", "cpu", 0)
    assert torchrun["steps"] == 4 and torchrun["processes"] == 1

    goals = report["goals"]
    assert len(goals) == 2 and all(g["passed"] is None and g["why_not_judged"] for g in goals), goals
