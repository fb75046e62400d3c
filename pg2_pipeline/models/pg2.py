"""The PG² model object: G1 and (after stage 2) G2 as one module that owns the two-stage
forward, loading and generation.

    pg2 = PG2.from_stage_folders(paths.stage("stage1"), paths.stage("stage2"))
    coarse, refined = pg2(batch.condition, batch.target_map)       # [-1, 1] tensors
    images = pg2.generate(condition_uint8, target_keypoints)        # numpy uint8 (N, H, W, 3)
    pg2 = PG2.from_registered("models:/pg2-generator@champion")

Training samples, the evaluation, its report and the MLflow model all go through this class, so
"coarse + difference map" (paper Eq. 4) is written once: :meth:`refine`.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from pg2_pipeline import imaging
from pg2_pipeline.models import io
from pg2_pipeline.paths import StagePaths
from pg2_pipeline.pose.maps import pose_maps, to_network
from pg2_pipeline.skeleton import NUM_JOINTS

Tensor = torch.Tensor


class PG2(nn.Module):
    """G1 (pose integration) and G2 (difference-map refinement); ``g2`` None = stage 1 only."""

    def __init__(self, g1: nn.Module, g2: nn.Module | None = None):
        super().__init__()
        self.g1, self.g2 = g1, g2

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.g1.height), int(self.g1.width)

    def coarse(self, condition: Tensor, target_map: Tensor) -> Tensor:
        """G1(I_A, P_B): the coarse result (B, 3, H, W) in [-1, 1] (paper Sec. 3.1)."""
        return self.g1(condition, target_map)

    def refine(self, coarse: Tensor, condition: Tensor, g2: nn.Module | None = None) -> Tensor:
        """I_B' = G1 output + G2(G1 output, I_A) (paper Eq. 4). ``g2``: a wrapped (compiled,
        distributed) copy of ``self.g2`` to run instead."""
        return coarse + (g2 or self.g2)(coarse, condition)

    def forward(self, condition: Tensor, target_map: Tensor) -> tuple[Tensor, Tensor | None]:
        """(coarse, refined); refined is None without G2."""
        coarse = self.coarse(condition, target_map)
        return coarse, (self.refine(coarse, condition) if self.g2 is not None else None)

    @torch.inference_mode()
    def generate(self, condition: np.ndarray, target_keypoints: np.ndarray) -> np.ndarray:
        """The condition persons in the target poses.

        ``condition``: uint8 (N, H, W, 3) RGB at the model's size; ``target_keypoints``: float32
        (N, 18, 2) OpenPose-18 (y, x) in that frame, -1 = missing. Returns uint8 (N, H, W, 3):
        the refined image, or G1's when there is no G2.
        """
        h, w = self.image_size
        condition, keypoints = np.asarray(condition), np.asarray(target_keypoints, dtype=np.float32)
        if condition.ndim != 4 or condition.shape[1:] != (h, w, 3) or condition.dtype != np.uint8:
            raise ValueError(f"condition must be uint8 (N, {h}, {w}, 3), got {condition.dtype} {condition.shape}")
        if keypoints.shape != (condition.shape[0], NUM_JOINTS, 2):
            raise ValueError(
                f"target_keypoints must be float32 (N, {NUM_JOINTS}, 2) matching condition, got {keypoints.shape}"
            )
        device = next(self.parameters()).device
        image = imaging.from_uint8(imaging.from_numpy_hwc(condition, device))  # (N, 3, H, W)
        pose = to_network(pose_maps(torch.from_numpy(keypoints).to(device), h, w))  # (N, 18, H, W)
        coarse, refined = self(image, pose)
        return imaging.to_numpy_hwc(refined if refined is not None else coarse)

    # ------------------------------------------------------------------------- loading

    @classmethod
    def from_stage_folders(
        cls, stage1: StagePaths, stage2: StagePaths | None = None, device: str | torch.device = "cpu"
    ) -> PG2:
        """G1 from the stage-1 folder and, when given, G2 from the stage-2 folder, in eval mode."""
        g1 = io.load_model(stage1, "g1", device)
        g2 = io.load_model(stage2, "g2", device) if stage2 is not None else None
        return cls(g1, g2).eval()

    @classmethod
    def from_registered(cls, model_uri: str) -> PG2:
        """The PG² object of a logged or registered generator (``models:/name@alias``,
        ``models:/name/3``, ``runs:/id/generator``), through the MLflow model's own loader."""
        return load_pyfunc(model_uri).unwrap_python_model().pg2


def load_pyfunc(model_uri: str):
    """``mlflow.pyfunc.load_model`` for code that runs the installed pg2_pipeline: MLflow puts the
    model's code folder (the few modules of pg2_pipeline the model ships) first on ``sys.path`` for
    good, and processes started later with that path (BlazePose and evaluation workers, spawned)
    would import that partial copy instead of the package. ``sys.path`` is restored."""
    import mlflow

    search_path = list(sys.path)
    try:
        return mlflow.pyfunc.load_model(model_uri)
    finally:
        sys.path[:] = search_path
