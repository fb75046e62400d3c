"""The PG²+ switches of stage 2: what D sees, PatchGAN, spectral norm, D's learning rate and the
perceptual term, built from params and stepped."""

from __future__ import annotations

import math

import pytest
import torch
from test_config import raw_params
from test_steps import B, H, W, changed, make_batch, snapshot

from pg2_pipeline.config import params_from_dict
from pg2_pipeline.models import G1, G2, Discriminator, PatchDiscriminator, io
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.runtime import Runtime
from pg2_pipeline.train.stage import StageContext, make_optimizer
from pg2_pipeline.train.stage2 import Stage2, d_in_channels


def test_conditional_patch_sn_d_with_perceptual_term_updates_g2_and_d():
    torch.manual_seed(0)
    g1, g2 = G1(H, W, 8), G2(H, W, 8)
    d = PatchDiscriminator(H, W, 8, in_channels=d_in_channels("pair_pose"), spectral_norm=True)
    seen = []
    d.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    stage = Stage2(g1, g2, d, make_optimizer(g2.parameters()), make_optimizer(d.parameters(), lr=1e-4), 10.0,
                   d_input="pair_pose", lambda_perceptual=2.0)  # fmt: skip
    batch = make_batch()
    g2_before, d_before = snapshot(g2), snapshot(d)
    result = stage.step(batch)

    assert seen[0].shape == (4 * B, 3 + 3 + 18, H, W)  # (I_A, X, P_B) for target, condition, G1, I_B'
    real, condition = seen[0][:B], seen[0][B : 2 * B]
    assert torch.equal(real[:, :3], batch.condition) and torch.equal(real[:, 3:6], batch.target)
    assert torch.equal(condition[:, 3:6], batch.condition)  # the copy of I_A, judged fake
    assert torch.equal(real[:, 6:], batch.target_map)
    assert result["loss_G2"] == pytest.approx(
        result["loss_G2_GAN"] + 10 * result["loss_G2_L1"] + 2 * result["loss_G2_LPIPS"], rel=1e-5
    )
    assert all(math.isfinite(v) for v in result.values()) and 0 <= result["acc_D_fake"] <= 1
    assert all(changed(g2, g2_before).values()) and any(changed(d, d_before).values())
    assert any("parametrizations" in k for k in d.state_dict())  # spectral norm


def test_d_input_pair_and_pose_channels():
    assert d_in_channels("image") == 3 and d_in_channels("pair") == 6 and d_in_channels("pose") == 21
    torch.manual_seed(0)
    g1, g2 = G1(H, W, 8), G2(H, W, 8)
    d = Discriminator(H, W, 8, in_channels=d_in_channels("pose"))
    stage = Stage2(g1, g2, d, make_optimizer(g2.parameters()), make_optimizer(d.parameters()), 10.0, d_input="pose")
    assert math.isfinite(stage.step(make_batch())["loss_D"])
    with pytest.raises(ValueError, match="unknown d_input 'stereo'"):
        Stage2(g1, g2, d, make_optimizer(g2.parameters()), make_optimizer(d.parameters()), 10.0, d_input="stereo")


@pytest.mark.parametrize("variant", ["pg2", "pg2plus"])
def test_variants_build_from_params_and_export_what_loads_back(variant, tiny_trained, tmp_path):
    raw = raw_params()
    raw["base"]["profile"] = "tiny"
    raw["stage2"]["profiles"]["tiny"].update(variant=variant, d_lr=3e-4)
    params = params_from_dict(raw)
    paths = ProjectPaths(tiny_trained)
    ctx = StageContext(params.stage2, params, paths, (H, W), Runtime.resolve("cpu"))
    stage = Stage2.build(ctx)
    plus = variant == "pg2plus"
    assert isinstance(stage.d, PatchDiscriminator if plus else Discriminator)
    assert stage.opt_d.param_groups[0]["lr"] == 3e-4 and stage.opt_g2.param_groups[0]["lr"] == params.stage2.lr
    assert (stage.perceptual is not None) == plus and stage.d_input == ("pair_pose" if plus else "image")
    out = paths.stage("stage2").__class__(tmp_path / "stage2")
    stage.export(out)
    d = io.load_model(out, "d")
    assert type(d) is type(stage.d)
    assert all(torch.equal(a, b) for a, b in zip(d.state_dict().values(), stage.d.state_dict().values()))
