"""PG² losses, written as in the paper (Ma et al. 2017, Eqs. 1–6) and the reference code.

Every loss is computed in float32, also under bf16 autocast: inputs are cast with ``.float()``
first (a bf16 mean over 10⁵ pixels would lose digits), and the discriminator losses work on
logits with ``binary_cross_entropy_with_logits`` (numerically stable; autocast keeps it fp32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def pose_mask_l1(generated: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Pose-mask L1 (paper Eq. 2): ``mean(|G − I_B| · (1 + M_B))``.

    The same as the reference's ``mean(|G − I_B|) + mean(|G − I_B| · M_B)``: the mask
    (B, 1, H, W) in {0, 1} is broadcast over the colour channels, so both means divide by
    B·3·H·W. Pixels on the body count twice.
    """
    l1 = (generated.float() - target.float()).abs()  # (B, 3, H, W)
    return (l1 * (1.0 + mask.float())).mean()


def bce_logits(logits: Tensor, is_real: bool) -> Tensor:
    """BCE of D's logits against an all-real (1) or all-fake (0) label, in float32."""
    logits = logits.float()
    labels = torch.ones_like(logits) if is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, labels)


def generator_stage2_loss(
    d_fake: Tensor, fake: Tensor, target: Tensor, mask: Tensor, lambda_l1: float
) -> tuple[Tensor, Tensor, Tensor]:
    """G2's objective (paper Eq. 5): ``BCE(D(I_B'), 1) + λ · poseMaskL1(I_B', I_B)``.

    λ = 10 on Market-1501, 50 on DeepFashion. Returns (total, adversarial, L1).
    """
    loss_gan = bce_logits(d_fake, is_real=True)
    loss_l1 = pose_mask_l1(fake, target, mask)
    return loss_gan + lambda_l1 * loss_l1, loss_gan, loss_l1


def discriminator_triplet_loss(d_real: Tensor, d_condition: Tensor, d_fake: Tensor) -> Tensor:
    """D's objective on Market-1501 (reference ``_gan_loss``):
    ``0.5·BCE(D(I_B), 1) + 0.25·BCE(D(I_A), 0) + 0.25·BCE(D(I_B'), 0)``.

    The condition image I_A counts as a fake (paper Eq. 6 and Sec. 3.3). The reference D sees
    single images, never the target pose, so this cannot teach it pose alignment: training pairs
    come in both orders, I_A and I_B are drawn from one distribution, and the term only caps
    D(real) near 2/3 (measured: accuracy on I_B ≈ 0.70, on I_A ≈ 0.30). Nothing stops G2 from
    pasting I_A; a D that sees the pair or the pose (the PG²+ ``d_input`` variants) does.
    """
    return (
        0.5 * bce_logits(d_real, is_real=True)
        + 0.25 * bce_logits(d_condition, is_real=False)
        + 0.25 * bce_logits(d_fake, is_real=False)
    )


def discriminator_pooled_loss(d_real: Tensor, d_condition: Tensor, d_fake: Tensor) -> Tensor:
    """D's objective on DeepFashion (reference ``PG2_256._gan_loss``): the target is real; I_B'
    and I_A are pooled into one fake set; the sum is halved:
    ``(BCE(D(I_B), 1) + BCE(D([I_B'; I_A]), 0)) / 2``.

    The pooled mean is ``(n_f·mean_f + n_c·mean_c) / (n_f + n_c)``, so with as many generated as
    condition images (always the case in a PG² step: one of each per pair) it is
    ``0.5·mean_f + 0.5·mean_c`` and the whole loss equals :func:`discriminator_triplet_loss`
    (0.5 / 0.25 / 0.25). The two differ only when the two fake sets differ in size.
    """
    d_fakes = torch.cat([d_fake.float(), d_condition.float()], dim=0)  # (n_f + n_c,)
    return (bce_logits(d_real, is_real=True) + bce_logits(d_fakes, is_real=False)) / 2


DISCRIMINATOR_LOSSES = {
    "market": discriminator_triplet_loss,
    "deepfashion": discriminator_pooled_loss,
}
