"""The fast evaluation computes what the serial one did: BlazePose in worker processes gives the
in-process poses, and the evaluation with its feature cache (cold, then warm) gives the numbers
of the serial path (FID to float32 rounding of the Inception features)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from pg2_pipeline.config import load_params
from pg2_pipeline.evaluate.feature_cache import ImageStore
from pg2_pipeline.evaluate.pose_pool import PoseRunner, blazepose_protocol
from pg2_pipeline.evaluate.stage import METHODS, SERIAL, build_evaluation
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.pose.blazepose import POSE_VECTOR


def people(n: int = 6) -> torch.Tensor:
    """uint8 (n, 3, 128, 64): 2:1 windows of the astronaut photo (a person) and one of noise."""
    from skimage import data

    photo = data.astronaut()
    out = [cv2.resize(photo[:, 40 * i : 40 * i + 256], (64, 128), interpolation=cv2.INTER_AREA) for i in range(n - 1)]
    out.append(np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def test_worker_processes_give_the_in_process_poses(tmp_path):
    images = people()
    serial = PoseRunner(0)
    try:
        yx, found = serial.result(serial.submit(images))
    finally:
        serial.close()
    assert found[:-1].any() and not found[-1]  # a person in the photo windows, none in noise
    pool = PoseRunner(1, store=ImageStore(tmp_path, "blazepose", blazepose_protocol(), POSE_VECTOR))
    try:
        pending = [pool.submit(images[:3], reuse=True), pool.submit(images[3:], reuse=True)]
        results = [pool.result(p) for p in pending]
    finally:
        pool.close()
    assert torch.equal(torch.cat([r[0] for r in results]), yx)
    assert torch.equal(torch.cat([r[1] for r in results]), found)
    # the real images' poses were saved: a later runner reuses them (none recomputed)
    again = PoseRunner(0, store=ImageStore(tmp_path, "blazepose", blazepose_protocol(), POSE_VECTOR))
    try:
        pending = again.submit(images, reuse=True)
        assert pending.found.all() and pending.work is None
        cached_yx, cached_found = again.result(pending)
    finally:
        again.close()
    assert torch.equal(cached_yx, yx) and torch.equal(cached_found, found)


def _same_metrics(a, b, fid_rel: float) -> None:
    for method in METHODS:
        x, y = a.metrics.method(method), b.metrics.method(method)
        assert set(x) == set(y), method
        for key in x:
            if key == "fid":
                assert x[key] == pytest.approx(y[key], rel=fid_rel), (method, x[key], y[key])
            else:
                assert x[key] == y[key], (method, key, x[key], y[key])


@pytest.mark.slow
def test_fast_cold_and_warm_evaluations_give_the_serial_numbers(tiny_evaluated, tmp_path):
    src, fast = tiny_evaluated  # the default path: pose workers, folded Inception, cold cache
    assert fast.fid["real_set_cache"]["status"] == "miss" and fast.fid["copy_features_reused"] == 0
    assert {"setup", "generation", "ssim", "lpips", "inception", "inception_real", "fid_distance"} <= set(
        fast.speed["seconds_by_part"]
    )
    root = tmp_path / "project"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))  # with its .pg2_cache
    paths = ProjectPaths(root)
    params = load_params(paths.params_file)

    serial = build_evaluation(params, paths, progress=False, speed=SERIAL)
    assert serial.fid["real_set_cache"]["status"] == "off" and serial.speed["pose_workers"] == 0
    _same_metrics(fast, serial, fid_rel=1e-4)

    warm = build_evaluation(params, paths, progress=False)
    cache = warm.fid["real_set_cache"]
    assert cache["status"] == "hit" and cache["key"] == fast.fid["real_set_cache"]["key"]
    assert cache["computed_images"] == 0 and warm.fid["copy_features_reused"] == warm.metrics.pairs
    assert warm.speed["poses_reused"] == 2 * warm.metrics.pairs  # condition and target images
    _same_metrics(fast, warm, fid_rel=1e-6)
    assert warm.gate.passed == fast.gate.passed and warm.curves_points == fast.curves_points
