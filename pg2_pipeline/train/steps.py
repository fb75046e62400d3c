"""One optimisation step per PG² stage, in the reference code's update order.

Stage 1 trains G1 alone with the pose-mask L1. Stage 2 freezes G1 and alternates, 1:1, one G2
update and one D update (the reference's ``train()``: ``g_optim2`` then ``d_optim`` each step).

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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import torch
from torch import nn

from pg2_pipeline.models.losses import (
    DISCRIMINATOR_LOSSES,
    bce_logits,
    generator_stage2_loss,
    pose_mask_l1,
)

Tensor = torch.Tensor
D_VARIANTS = tuple(DISCRIMINATOR_LOSSES)  # ("market", "deepfashion")


@dataclass(frozen=True)
class Batch:
    """One batch of training pairs (A → B). Images and the pose map in [-1, 1], mask in {0, 1}."""

    condition: Tensor  # I_A (B, 3, H, W)
    target: Tensor  # I_B (B, 3, H, W)
    target_map: Tensor  # P_B (B, 18, H, W)
    target_mask: Tensor  # M_B (B, 1, H, W)

    def __post_init__(self) -> None:
        b, _, h, w = self.target.shape
        expected = {"condition": 3, "target": 3, "target_map": None, "target_mask": 1}
        for name, channels in expected.items():
            t = getattr(self, name)
            if t.dim() != 4 or t.shape[0] != b or t.shape[2:] != (h, w):
                raise ValueError(
                    f"Batch.{name} has shape {tuple(t.shape)}, expected ({b}, C, {h}, {w})"
                )
            if channels is not None and t.shape[1] != channels:
                raise ValueError(f"Batch.{name} has {t.shape[1]} channels, expected {channels}")

    def to(self, device: torch.device | str, memory_format=torch.contiguous_format) -> Batch:
        """The batch on ``device`` (non-blocking from pinned memory) in ``memory_format``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=True, memory_format=memory_format)
            for f in fields(self)
        }
        return Batch(**moved)

    def __len__(self) -> int:
        return self.target.shape[0]


class StepResult(dict):
    """The step's losses and monitors as Python floats (log it as it is), plus ``.images``:
    detached float32 tensors (G1, DiffMap, G2) when the step was asked for them, else None."""

    images: dict[str, Tensor] | None = None


def make_optimizer(
    params: Iterable[nn.Parameter],
    lr: float = 2e-5,
    betas: tuple[float, float] = (0.5, 0.999),
    fused: bool = True,
) -> torch.optim.Adam:
    """Adam with the reference's settings for G1, G2 and D (lr 2e-5, β1 0.5, β2 0.999).

    ``fused``: one kernel per tensor instead of ~6 element-wise passes; same arithmetic. On the
    2-core CPU it makes G1's update (71 M parameters at C=128) 2–5× faster (≈0.2–0.45 s
    instead of ≈1–2 s per step); on GPUs it is the fastest Adam too.
    """
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)


def stage1_step(
    g1: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    *,
    autocast: torch.dtype | None = None,
    return_images: bool = False,
) -> StepResult:
    """One G1 update: ``L_G1 = poseMaskL1(G1(I_A, P_B), I_B)`` (paper Eq. 3)."""
    g1.train()
    with _autocast(batch, autocast):
        g1_out = g1(batch.condition, batch.target_map)  # (B, 3, H, W)
        loss_G1 = pose_mask_l1(g1_out, batch.target, batch.target_mask)

    optimizer.zero_grad(set_to_none=True)
    loss_G1.backward()
    optimizer.step()

    result = _floats(
        loss_G1=loss_G1,
        loss_G1_masked=_masked_l1(g1_out, batch),  # the reference's PoseMaskLoss1 monitor
    )
    if return_images:
        result.images = {"G1": g1_out.detach().float()}
    return result


def stage2_step(
    g1: nn.Module,
    g2: nn.Module,
    d: nn.Module,
    opt_g2: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    batch: Batch,
    lambda_l1: float,
    *,
    d_variant: str = "market",
    autocast: torch.dtype | None = None,
    return_images: bool = False,
) -> StepResult:
    """One G2 update, then one D update; G1 frozen.

    ``lambda_l1``: 10 on Market-1501, 50 on DeepFashion. ``d_variant``: which reference D
    batch and loss, "market" (triplet 0.5/0.25/0.25, G1's output in D's batch) or "deepfashion"
    (pooled fakes).
    """
    if d_variant not in DISCRIMINATOR_LOSSES:
        raise ValueError(f"unknown d_variant {d_variant!r}; known: {', '.join(D_VARIANTS)}")
    discriminator_loss = DISCRIMINATOR_LOSSES[d_variant]
    g1.eval()
    g2.train()
    d.train()  # BatchNorm on batch statistics, as the reference always does

    with _autocast(batch, autocast):
        with torch.no_grad():
            g1_out = g1(batch.condition, batch.target_map)  # (B, 3, H, W), frozen
        diff_map = g2(g1_out, batch.condition)  # (B, 3, H, W)
        fake = g1_out + diff_map  # I_B' (paper Eq. 4)

        # --- G2: fool D and match the target, with D frozen ---
        with _frozen(d):
            logits = _discriminate(d, d_variant, batch, g1_out, fake)
            loss_G2, loss_G2_GAN, loss_G2_L1 = generator_stage2_loss(
                logits["fake"], fake, batch.target, batch.target_mask, lambda_l1
            )
    opt_g2.zero_grad(set_to_none=True)
    loss_G2.backward()
    opt_g2.step()

    # --- D: target real; condition and I_B' fake ---
    with _autocast(batch, autocast):
        logits = _discriminate(d, d_variant, batch, g1_out, fake.detach())
        loss_D = discriminator_loss(logits["real"], logits["condition"], logits["fake"])
    opt_d.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_d.step()

    result = _floats(
        loss_G2=loss_G2,
        loss_G2_GAN=loss_G2_GAN,
        loss_G2_L1=loss_G2_L1,
        loss_G2_masked=_masked_l1(fake, batch),  # the reference's PoseMaskLoss2 monitor
        loss_D=loss_D,
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
            "DiffMap": diff_map.detach().float(),
            "G2": fake.detach().float(),
        }
    return result


def _discriminate(
    d: nn.Module, d_variant: str, batch: Batch, g1_out: Tensor, fake: Tensor
) -> dict[str, Tensor]:
    """D on the reference's concatenated batch (shared BatchNorm statistics); logits by part."""
    if d_variant == "market":
        parts = {"real": batch.target, "condition": batch.condition, "g1": g1_out, "fake": fake}
    else:
        parts = {"real": batch.target, "fake": fake, "condition": batch.condition}
    images = torch.cat([p.to(fake.dtype) for p in parts.values()], dim=0)  # (k·B, 3, H, W)
    return dict(zip(parts, d(images).chunk(len(parts)), strict=True))  # each (B,)


def _masked_l1(generated: Tensor, batch: Batch) -> Tensor:
    """mean(|G − I_B| · M_B): the on-body part of the pose-mask L1, a monitor only."""
    with torch.no_grad():
        return ((generated.float() - batch.target.float()).abs() * batch.target_mask.float()).mean()


def _autocast(batch: Batch, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """bf16 (or fp16) autocast on the batch's device type; None = plain float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=batch.target.device.type, dtype=dtype)


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside (gradients still flow to its input)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def _floats(**values: Tensor) -> StepResult:
    """Detached scalars to Python floats with one device sync (one ``tolist``)."""
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    return StepResult(zip(values, stacked.tolist(), strict=True))
