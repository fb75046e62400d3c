"""Stage 1 of PG²: G1 alone, trained with the pose-mask L1 (paper Eq. 3)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.models import build_generator, io
from pg2_pipeline.models.losses import pose_mask_l1
from pg2_pipeline.paths import StagePaths
from pg2_pipeline.train.stage import StageContext, StepResult, TrainingStage, floats, make_optimizer, masked_l1


class Stage1(TrainingStage):
    name = "stage1"
    trained = ("g1",)

    def __init__(
        self,
        g1: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        amp: torch.dtype | None = None,
        config: dict | None = None,
    ):
        super().__init__({"g1": g1}, {"g1": optimizer}, amp)
        self.g1, self.opt_g1 = g1, optimizer
        self.config = config or {}  # G1's constructor arguments, saved with its weights

    @classmethod
    def build(cls, ctx: StageContext) -> Stage1:
        cfg, rt = ctx.cfg, ctx.runtime
        height, width = ctx.image_size
        config = {"height": height, "width": width, "base_channels": cfg.base_channels, "z_dim": cfg.z_dim}
        if cfg.relu_slope:  # the paper's G1 keeps its config
            config["relu_slope"] = cfg.relu_slope
        g1 = build_generator("g1", **config).to(rt.device, memory_format=rt.memory_format)
        optimizer = make_optimizer(
            g1.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=rt.device.type != "mps"
        )
        stage = cls(g1, optimizer, amp=rt.amp, config=config)
        stage.average_weights(("g1",), cfg.ema_decay)
        return stage

    def step(self, batch: Batch, return_images: bool = False) -> StepResult:
        """One G1 update: ``L_G1 = poseMaskL1(G1(I_A, P_B), I_B)``."""
        g1 = self._run["g1"]
        g1.train()
        with self.autocast(batch):
            g1_out = g1(batch.condition, batch.target_map)  # (B, 3, H, W)
            loss_G1 = pose_mask_l1(g1_out, batch.target, batch.target_mask)

        self.opt_g1.zero_grad(set_to_none=True)
        loss_G1.backward()
        self.opt_g1.step()

        result = floats(
            loss_G1=loss_G1,
            loss_G1_masked=masked_l1(g1_out, batch),  # the reference's PoseMaskLoss1 monitor
        )
        if return_images:
            result.images = {"G1": g1_out.detach().float()}
        return result

    @torch.no_grad()
    def samples(self, batch: Batch) -> dict[str, torch.Tensor]:
        with self.autocast(batch):
            return {"G1": self.evaluated("g1")(batch.condition, batch.target_map).float()}

    @torch.no_grad()
    def output(self, batch: Batch) -> torch.Tensor:
        """G1's image (B, 3, H, W) for validation (its weight average under ``ema_decay``)."""
        with self.autocast(batch):
            return self.evaluated("g1")(batch.condition, batch.target_map).float()

    def export(self, files: StagePaths) -> list[Path]:
        return io.save_model(files, "g1", self.evaluated("g1"), self.config)
