"""PG² losses on tensors whose values can be worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from pg2_pipeline.models.losses import (
    bce_logits,
    discriminator_pooled_loss,
    discriminator_triplet_loss,
    generator_stage2_loss,
    pose_mask_l1,
)

LN2 = math.log(2.0)
BIG = 100.0  # BCE(+100, 1) = BCE(−100, 0) ≈ 4e-44: a term that is "switched off"


def half_mask_pair(dtype=torch.float32):
    """G = I_B + 0.5 everywhere; M_B = 1 on the top half of the rows."""
    target = torch.rand(2, 3, 8, 4) * 2 - 1
    generated = target + 0.5
    mask = torch.zeros(2, 1, 8, 4)
    mask[:, :, :4] = 1.0
    return generated.to(dtype), target.to(dtype), mask


def test_pose_mask_l1_half_mask():
    generated, target, mask = half_mask_pair()
    # |G − I_B| = 0.5 everywhere: mean(0.5·(1 + M)) = 0.5 · (1 + 0.5) = 0.75
    assert pose_mask_l1(generated, target, mask).item() == pytest.approx(0.75, abs=1e-6)
    # the reference's form: mean|G − I_B| + mean(|G − I_B|·M) = 0.5 + 0.25
    l1 = (generated - target).abs()
    assert pose_mask_l1(generated, target, mask).item() == pytest.approx(
        (l1.mean() + (l1 * mask).mean()).item(), abs=1e-6
    )


def test_pose_mask_l1_limits():
    generated, target, _ = half_mask_pair()
    assert pose_mask_l1(target, target, torch.ones(2, 1, 8, 4)).item() == 0.0
    assert pose_mask_l1(generated, target, torch.zeros(2, 1, 8, 4)).item() == pytest.approx(0.5)
    assert pose_mask_l1(generated, target, torch.ones(2, 1, 8, 4)).item() == pytest.approx(1.0)


def test_losses_are_float32_for_bf16_inputs():
    generated, target, mask = half_mask_pair(torch.bfloat16)
    loss = pose_mask_l1(generated, target, mask)
    assert loss.dtype == torch.float32
    assert bce_logits(torch.zeros(4, dtype=torch.bfloat16), is_real=True).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert pose_mask_l1(generated, target, mask).dtype == torch.float32


def test_bce_at_logit_zero_is_ln2():
    zeros = torch.zeros(5)
    assert bce_logits(zeros, is_real=True).item() == pytest.approx(LN2)
    assert bce_logits(zeros, is_real=False).item() == pytest.approx(LN2)
    assert bce_logits(torch.full((3,), BIG), is_real=True).item() == pytest.approx(0.0, abs=1e-6)
    assert bce_logits(torch.full((3,), BIG), is_real=False).item() == pytest.approx(BIG)


def test_generator_stage2_loss():
    generated, target, mask = half_mask_pair()
    total, gan, l1 = generator_stage2_loss(torch.zeros(2), generated, target, mask, lambda_l1=10)
    assert gan.item() == pytest.approx(LN2)
    assert l1.item() == pytest.approx(0.75)
    assert total.item() == pytest.approx(LN2 + 10 * 0.75)


def test_triplet_weights():
    zero, on, off = torch.zeros(4), torch.full((4,), BIG), torch.full((4,), -BIG)
    # all logits 0: (0.5 + 0.25 + 0.25)·ln 2
    assert discriminator_triplet_loss(zero, zero, zero).item() == pytest.approx(LN2)
    # one term at ln 2, the two others switched off (real → +∞, fakes → −∞)
    assert discriminator_triplet_loss(zero, off, off).item() == pytest.approx(0.5 * LN2)
    assert discriminator_triplet_loss(on, zero, off).item() == pytest.approx(0.25 * LN2)
    assert discriminator_triplet_loss(on, off, zero).item() == pytest.approx(0.25 * LN2)
    # the condition image counts as fake: calling it real (+BIG) costs 0.25·BIG
    assert discriminator_triplet_loss(on, on, off).item() == pytest.approx(0.25 * BIG)


def test_pooled_equals_triplet_for_equal_batch_sizes_only():
    torch.manual_seed(0)
    real, condition, fake = torch.randn(6), torch.randn(6), torch.randn(6)
    assert discriminator_pooled_loss(real, condition, fake).item() == pytest.approx(
        discriminator_triplet_loss(real, condition, fake).item(), abs=1e-6
    )
    # With 1 condition and 3 generated images the pooled mean weights them 1/4 and 3/4.
    zero, off = torch.zeros(1), torch.full((3,), -BIG)
    assert discriminator_pooled_loss(zero, zero, off).item() == pytest.approx(0.5 * LN2 + 0.5 * LN2 / 4)
    assert discriminator_triplet_loss(zero, zero, off).item() == pytest.approx(0.75 * LN2)
