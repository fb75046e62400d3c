"""The stage objects' updates change exactly the parameters they should."""

from __future__ import annotations

import math

import pytest
import torch

from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.models import G1, G2, Discriminator
from pg2_pipeline.train.stage import WeightAverage, lr_factor, make_optimizer
from pg2_pipeline.train.stage1 import Stage1
from pg2_pipeline.train.stage2 import Stage2

H, W, C, B = 128, 64, 8, 2


def make_batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        condition=torch.rand(B, 3, H, W, generator=g) * 2 - 1,
        target=torch.rand(B, 3, H, W, generator=g) * 2 - 1,
        target_map=torch.rand(B, 18, H, W, generator=g) * 2 - 1,
        target_mask=(torch.rand(B, 1, H, W, generator=g) > 0.5).float(),
    )


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return G1(H, W, C), G2(H, W, C), Discriminator(H, W, base_channels=8)


def stage1_step(g1, opt, batch, *, autocast=None, return_images=False):
    return Stage1(g1, opt, amp=autocast).step(batch, return_images=return_images)


def stage2_step(g1, g2, d, opt_g2, opt_d, batch, lambda_l1, *, d_variant="market", autocast=None, return_images=False):
    stage = Stage2(g1, g2, d, opt_g2, opt_d, lambda_l1, d_variant=d_variant, amp=autocast)
    return stage.step(batch, return_images=return_images)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> dict[str, bool]:
    return {k: not torch.equal(v, before[k]) for k, v in module.named_parameters()}


def test_make_optimizer_defaults(nets):
    opt = make_optimizer(nets[0].parameters())
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == 2e-5 and opt.defaults["betas"] == (0.5, 0.999)
    assert opt.defaults["fused"]  # same arithmetic as the for-loop Adam, one kernel per tensor


def test_stage1_changes_every_g1_parameter(nets):
    g1 = nets[0]
    before = snapshot(g1)
    losses = stage1_step(g1, make_optimizer(g1.parameters()), make_batch())
    assert all(changed(g1, before).values())
    assert set(losses) == {"loss_G1", "loss_G1_masked"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses.values())
    assert losses.images is None


def test_stage2_freezes_g1_and_updates_g2_then_d(nets):
    g1, g2, d = nets
    opt_g2, opt_d = make_optimizer(g2.parameters()), make_optimizer(d.parameters())
    g1_before, g2_before, d_before = snapshot(g1), snapshot(g2), snapshot(d)
    events: list[str] = []

    # Spy on the two optimiser steps: each may move only its own network.
    def spy(name, opt, own, other):
        real_step = opt.step

        def step(*args, **kwargs):
            events.append(name)
            other_before = snapshot(other)
            own_before = snapshot(own)
            if name == "G2":  # D frozen during G2's update: no gradient reached it
                assert all(p.grad is None for p in d.parameters())
                spy.g2_grads = {k: p.grad.clone() for k, p in g2.named_parameters()}
            else:  # D's loss must not backpropagate into G2
                for k, p in g2.named_parameters():
                    assert torch.equal(p.grad, spy.g2_grads[k])
            out = real_step(*args, **kwargs)
            assert not any(changed(other, other_before).values()), f"{name} moved the other net"
            assert any(changed(own, own_before).values())
            return out

        opt.step = step

    spy("G2", opt_g2, g2, d)
    spy("D", opt_d, d, g2)

    result = stage2_step(g1, g2, d, opt_g2, opt_d, make_batch(), lambda_l1=10.0)

    assert events == ["G2", "D"]
    assert not any(changed(g1, g1_before).values())  # bit-identical
    assert all(p.grad is None for p in g1.parameters())
    assert all(changed(g2, g2_before).values())
    assert all(changed(d, d_before).values())
    assert all(isinstance(v, float) and math.isfinite(v) for v in result.values())
    assert result["loss_G2"] == pytest.approx(result["loss_G2_GAN"] + 10.0 * result["loss_G2_L1"])
    assert result["loss_D"] == pytest.approx(
        0.5 * result["loss_D_real"] + 0.25 * result["loss_D_condition"] + 0.25 * result["loss_D_fake"], rel=1e-5
    )
    assert all(0.0 <= result[k] <= 1.0 for k in ("acc_D_real", "acc_D_condition", "acc_D_fake"))


def test_d_sees_the_reference_batch(nets):
    """BatchNorm statistics come from the reference's concatenated batch: 4 parts on Market
    (target, condition, G1, I_B'), 3 on DeepFashion."""
    g1, g2, d = nets
    sizes = []
    d.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    opts = make_optimizer(g2.parameters()), make_optimizer(d.parameters())
    stage2_step(g1, g2, d, *opts, make_batch(), lambda_l1=10.0, d_variant="market")
    stage2_step(g1, g2, d, *opts, make_batch(), lambda_l1=50.0, d_variant="deepfashion")
    assert sizes == [4 * B, 4 * B, 3 * B, 3 * B]
    with pytest.raises(ValueError, match="unknown d_variant 'lsgan'.*market, deepfashion"):
        stage2_step(g1, g2, d, *opts, make_batch(), lambda_l1=10.0, d_variant="lsgan")


def test_images_when_asked(nets):
    g1, g2, d = nets
    out1 = stage1_step(g1, make_optimizer(g1.parameters()), make_batch(), return_images=True)
    assert out1.images["G1"].shape == (B, 3, H, W)
    g1.zero_grad(set_to_none=True)
    opts = make_optimizer(g2.parameters()), make_optimizer(d.parameters())
    out2 = stage2_step(g1, g2, d, *opts, make_batch(), lambda_l1=10.0, return_images=True)
    images = out2.images
    assert set(images) == {"G1", "DiffMap", "G2"}
    assert torch.allclose(images["G2"], images["G1"] + images["DiffMap"])
    assert not any(t.requires_grad for t in images.values())


def test_bf16_autocast_channels_last_steps_are_finite(nets):
    g1, g2, d = nets
    for m in nets:
        m.to(memory_format=torch.channels_last)
    batch = make_batch().to("cpu", memory_format=torch.channels_last)
    out1 = stage1_step(g1, make_optimizer(g1.parameters()), batch, autocast=torch.bfloat16)
    g1.zero_grad(set_to_none=True)
    opts = make_optimizer(g2.parameters()), make_optimizer(d.parameters())
    out2 = stage2_step(g1, g2, d, *opts, batch, lambda_l1=10.0, autocast=torch.bfloat16)
    assert all(math.isfinite(v) for v in {**out1, **out2}.values())
    assert all(p.dtype == torch.float32 for m in nets for p in m.parameters())


def test_batch_rejects_mismatched_shapes():
    batch = make_batch()
    with pytest.raises(ValueError, match="Batch.target_mask has 3 channels, expected 1"):
        Batch(batch.condition, batch.target, batch.target_map, batch.target)
    with pytest.raises(ValueError, match="Batch.target_map has shape"):
        Batch(batch.condition, batch.target, batch.target_map[:, :, :64], batch.target_mask)


def test_weight_average_warms_up_then_follows_its_decay():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(net, decay=0.5)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(3.0)
    average.update(1)  # warm-up: d = min(0.5, 2 / 11)
    d = 2 / 11
    assert torch.allclose(average.module[0].weight, d * start + (1 - d) * (start + 1))
    assert torch.equal(average.module[1].running_mean, net[1].running_mean)  # buffers copied
    before = average.module[0].weight.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    average.update(100)  # past the warm-up: d = 0.5
    assert torch.allclose(average.module[0].weight, 0.5 * before + 0.5 * net[0].weight)
    assert not any(p.requires_grad for p in average.module.parameters())
    with pytest.raises(ValueError, match="ema_decay must be in"):
        WeightAverage(net, decay=1.0)


def test_lr_schedules():
    assert [lr_factor("constant", t, 100) for t in (0, 50, 99)] == [1.0, 1.0, 1.0]
    cosine = [lr_factor("cosine", t, 100) for t in range(100)]
    assert cosine[0] == 1.0 and cosine[50] == pytest.approx(0.5) and cosine[99] < 1e-3
    assert all(a > b for a, b in zip(cosine, cosine[1:]))
    with pytest.raises(ValueError, match="unknown lr_schedule 'step'"):
        lr_factor("step", 0, 10)
