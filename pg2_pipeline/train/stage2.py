"""Stage 2 of PG²: G1 frozen; G2 (difference map) and D updated in turn, 1:1, in the reference
code's order (its ``train()``: ``g_optim2`` then ``d_optim`` each step).

Faithfulness notes (reference = charliememory/Pose-Guided-Person-Image-Generation, TF 1.4):

* **D's batch.** The reference runs D once on the concatenation of everything it judges, and
  both the G2 and the D objective read their logits from that one batch, so BatchNorm normalises
  real and fake images together. On Market-1501 that batch is [I_B, I_A, G1 output, I_B'] (G1's
  logit enters no loss, only the batch statistics); on DeepFashion it is [I_B, I_B', I_A]. We do
  the same (``d_variant``); running D on real and fake images separately would change what
  BatchNorm does.
* **Order and batches.** The reference's two ``sess.run`` calls each dequeue a fresh batch, and
  D sees the output of the *already updated* G2. We take one batch per step: G2 is updated
  first, then D on ``I_B'.detach()`` from this step's forward (before G2's update) — one G2
  forward per step instead of two; the difference is one Adam step of G2 (lr 2e-5).
* **Frozen G1.** G1 runs under ``torch.no_grad()`` in eval mode: no graph, no ``.grad``.
* **Adam.** ``torch.optim.Adam`` adds ε to the bias-corrected √v̂, TF's ``AdamOptimizer`` to the
  uncorrected √v (its ε is "ε-hat"); with ε = 1e-8 that matters only while v is ~1e-16.

PG²+ switches (params ``stage2``; all off in the ``pg2`` variant): ``d_input`` shows D the
condition image and/or the target pose map beside the judged image — then the condition sample is
(I_A, I_A, P_B), a copy in the right pose slot, and D can learn that copying I_A is fake;
``d_arch: patch``, ``spectral_norm`` and ``d_lr`` change D and its optimiser;
``lambda_perceptual`` adds ``λ_p · LPIPS(I_B', I_B)`` (AlexNet-LPIPS, frozen) to G2's loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pg2_pipeline.evaluate.lpips import LPIPS
from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.models import build_discriminator, build_generator, io
from pg2_pipeline.models.g1 import IMAGE_CHANNELS, POSE_CHANNELS
from pg2_pipeline.models.losses import DISCRIMINATOR_LOSSES, bce_logits, generator_stage2_loss
from pg2_pipeline.models.pg2 import PG2
from pg2_pipeline.paths import StagePaths
from pg2_pipeline.provenance import file_hash
from pg2_pipeline.train.stage import (
    StageContext,
    StepResult,
    TrainingStage,
    floats,
    frozen,
    make_optimizer,
    masked_l1,
)

Tensor = torch.Tensor
D_VARIANTS = tuple(DISCRIMINATOR_LOSSES)  # ("market", "deepfashion")
# What D sees beside the judged image X, by params stage2.d_input: channels (I_A, X, P_B).
D_INPUTS = {"image": (False, False), "pair": (True, False), "pose": (False, True), "pair_pose": (True, True)}


def d_in_channels(d_input: str) -> int:
    with_condition, with_pose = D_INPUTS[d_input]
    return IMAGE_CHANNELS * (1 + with_condition) + POSE_CHANNELS * with_pose


class Stage2(TrainingStage):
    name = "stage2"
    trained = ("g2", "d")

    def __init__(
        self,
        g1: nn.Module,
        g2: nn.Module,
        d: nn.Module,
        opt_g2: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer,
        lambda_l1: float,
        *,
        d_variant: str = "market",
        d_input: str = "image",
        lambda_perceptual: float = 0.0,
        amp: torch.dtype | None = None,
        configs: dict[str, dict] | None = None,
        g1_weights: Path | None = None,
    ):
        """``lambda_l1``: 10 on Market-1501, 50 on DeepFashion. ``d_variant``: which reference D
        batch and loss, "market" (triplet 0.5/0.25/0.25, G1's output in D's batch) or
        "deepfashion" (pooled fakes). ``d_input`` and ``lambda_perceptual``: the PG²+ switches
        (module docstring); D must have been built for ``d_input``'s channels."""
        if d_variant not in DISCRIMINATOR_LOSSES:
            raise ValueError(f"unknown d_variant {d_variant!r}; known: {', '.join(D_VARIANTS)}")
        if d_input not in D_INPUTS:
            raise ValueError(f"unknown d_input {d_input!r}; known: {', '.join(D_INPUTS)}")
        super().__init__({"g2": g2, "d": d}, {"g2": opt_g2, "d": opt_d}, amp)
        self.pg2 = PG2(g1, g2)
        self.d, self.opt_g2, self.opt_d = d, opt_g2, opt_d
        self.lambda_l1, self.d_variant, self.d_input = lambda_l1, d_variant, d_input
        self.discriminator_loss = DISCRIMINATOR_LOSSES[d_variant]
        self.lambda_perceptual = lambda_perceptual
        self.perceptual = LPIPS.pretrained(device=next(g2.parameters()).device) if lambda_perceptual > 0 else None
        self.configs = configs or {}
        self.g1_weights = g1_weights

    @classmethod
    def build(cls, ctx: StageContext) -> Stage2:
        cfg, rt = ctx.cfg, ctx.runtime
        height, width = ctx.image_size
        stage1 = ctx.paths.stage("stage1")
        g1 = io.load_model(stage1, "g1", rt.device).to(memory_format=rt.memory_format)
        g1.requires_grad_(False)
        d_config = {"height": height, "width": width, "base_channels": cfg.d_base_channels}
        if (cfg.d_input, cfg.spectral_norm) != ("image", False):  # the paper's D keeps its config
            d_config |= {"in_channels": d_in_channels(cfg.d_input), "spectral_norm": cfg.spectral_norm}
        g2_config = {
            "height": height,
            "width": width,
            "base_channels": cfg.base_channels,
            "zero_init_output": cfg.zero_init_output,
        }
        g2 = build_generator("g2", **g2_config).to(rt.device, memory_format=rt.memory_format)
        d = build_discriminator(cfg.d_arch, **d_config).to(rt.device, memory_format=rt.memory_format)
        fused, betas = rt.device.type != "mps", (cfg.beta1, cfg.beta2)
        opt_g2 = make_optimizer(g2.parameters(), lr=cfg.lr, betas=betas, fused=fused)
        opt_d = make_optimizer(d.parameters(), lr=cfg.d_lr or cfg.lr, betas=betas, fused=fused)
        return cls(
            g1,
            g2,
            d,
            opt_g2,
            opt_d,
            cfg.lambda_l1,
            d_variant=ctx.params.base.dataset,
            d_input=cfg.d_input,
            lambda_perceptual=cfg.lambda_perceptual,
            amp=rt.amp,
            configs={"g2": g2_config, "d": d_config, "d_kind": cfg.d_arch},
            g1_weights=stage1.weights("g1"),
        )

    def inputs_hash(self) -> str:
        return file_hash(self.g1_weights) if self.g1_weights else ""

    @property
    def g1(self) -> nn.Module:
        return self.pg2.g1

    def step(self, batch: Batch, return_images: bool = False) -> StepResult:
        """One G2 update, then one D update; G1 frozen."""
        g2, d = self._run["g2"], self._run["d"]
        self.g1.eval()
        g2.train()
        d.train()  # BatchNorm on batch statistics, as the reference always does

        with self.autocast(batch):
            with torch.no_grad():
                g1_out = self.pg2.coarse(batch.condition, batch.target_map)  # (B, 3, H, W), frozen
            fake = self.pg2.refine(g1_out, batch.condition, g2)  # I_B' (B, 3, H, W)
        g2_losses = self.update_g2(batch, g1_out, fake)
        logits = self.update_d(batch, g1_out, fake.detach())

        result = floats(
            **g2_losses,
            loss_G2_masked=masked_l1(fake, batch),  # the reference's PoseMaskLoss2 monitor
            loss_D=logits.pop("loss"),
            loss_D_real=bce_logits(logits["real"], is_real=True),
            loss_D_condition=bce_logits(logits["condition"], is_real=False),
            loss_D_fake=bce_logits(logits["fake"], is_real=False),
            # D's accuracy (logit > 0 means "real") on each part of its batch, before its update.
            acc_D_real=(logits["real"] > 0).float().mean(),
            acc_D_condition=(logits["condition"] < 0).float().mean(),
            acc_D_fake=(logits["fake"] < 0).float().mean(),
        )
        if return_images:
            result.images = {
                "G1": g1_out.float(),
                "DiffMap": (fake - g1_out).detach().float(),
                "G2": fake.detach().float(),
            }
        return result

    def update_g2(self, batch: Batch, g1_out: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """G2 fools D and matches the target, D frozen: ``BCE(D(I_B'), 1) + λ·poseMaskL1`` (Eq. 5),
        ``+ λ_p·LPIPS(I_B', I_B)`` in the perceptual variants. Returns the loss terms. (The plain
        D, not its DDP wrapper: no gradient of D is computed here.)"""
        d = self._plain["d"]
        with self.autocast(batch), frozen(d):
            logits = self.discriminate(d, batch, g1_out, fake)
            loss_G2, loss_G2_GAN, loss_G2_L1 = generator_stage2_loss(
                logits["fake"], fake, batch.target, batch.target_mask, self.lambda_l1
            )
            losses = {"loss_G2": loss_G2, "loss_G2_GAN": loss_G2_GAN, "loss_G2_L1": loss_G2_L1}
            if self.perceptual is not None:
                loss_G2_LPIPS = self.perceptual(fake.float(), batch.target.float()).mean()
                losses |= {"loss_G2": loss_G2 + self.lambda_perceptual * loss_G2_LPIPS, "loss_G2_LPIPS": loss_G2_LPIPS}
        self.opt_g2.zero_grad(set_to_none=True)
        losses["loss_G2"].backward()
        self.opt_g2.step()
        return losses

    def update_d(self, batch: Batch, g1_out: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """D: the target is real; the condition image and I_B' are fake (Eq. 6). Returns D's
        logits by part (before its update) and its ``loss``."""
        with self.autocast(batch):
            logits = self.discriminate(self._run["d"], batch, g1_out, fake)
            loss_D = self.discriminator_loss(logits["real"], logits["condition"], logits["fake"])
        self.opt_d.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_d.step()
        return {**logits, "loss": loss_D}

    def discriminate(self, d: nn.Module, batch: Batch, g1_out: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """D on the reference's concatenated batch (shared BatchNorm statistics); logits by part."""
        if self.d_variant == "market":
            parts = {"real": batch.target, "condition": batch.condition, "g1": g1_out, "fake": fake}
        else:
            parts = {"real": batch.target, "fake": fake, "condition": batch.condition}
        with_condition, with_pose = D_INPUTS[self.d_input]
        if with_condition or with_pose:  # (I_A, X, P_B) for each judged X, on channels
            before, after = [batch.condition] * with_condition, [batch.target_map] * with_pose
            parts = {k: torch.cat([*before, x, *after], dim=1) for k, x in parts.items()}
        images = torch.cat([p.to(fake.dtype) for p in parts.values()], dim=0)  # (k·B, C, H, W)
        return dict(zip(parts, d(images).chunk(len(parts)), strict=True))  # each (B,) or (B, h, w)

    @torch.no_grad()
    def samples(self, batch: Batch) -> dict[str, Tensor]:
        with self.autocast(batch):
            coarse = self.pg2.coarse(batch.condition, batch.target_map).float()
            return {"G1": coarse, "G2": self.pg2.refine(coarse, batch.condition).float()}

    @property
    def starts_at_reference(self) -> bool:
        return bool(self.configs.get("g2", {}).get("zero_init_output"))  # G1 + a zero difference map

    @torch.no_grad()
    def reference_output(self, batch: Batch) -> Tensor:
        """G1's image: what stage 2 must keep the structure of while it refines."""
        with self.autocast(batch):
            return self.pg2.coarse(batch.condition, batch.target_map).float()

    @torch.no_grad()
    def output(self, batch: Batch) -> Tensor:
        """I_B' (B, 3, H, W) for validation."""
        with self.autocast(batch):
            return self.pg2(batch.condition, batch.target_map)[1].float()

    def export(self, files: StagePaths) -> list[Path]:
        g2 = io.save_model(files, "g2", self.pg2.g2, self.configs["g2"])
        return g2 + io.save_model(files, "d", self.d, self.configs["d"], self.configs.get("d_kind"))
