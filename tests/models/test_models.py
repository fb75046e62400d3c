"""G1, G2 and D: shapes at 128×64, 256×256 and 256×176, parameter counts at the paper's width, TF padding,
factories, channels_last and bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from pg2_pipeline.models import (
    G1,
    G2,
    Discriminator,
    PatchDiscriminator,
    build_discriminator,
    build_generator,
    count_parameters,
)
from pg2_pipeline.models.g1 import Conv2dSame

RESOLUTIONS = [(128, 64), (256, 256)]


# --- parameter arithmetic, written out from the architecture description -------------------
def conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


def fc(nin: int, nout: int) -> int:
    return nin * nout + nout


def bn(c: int) -> int:
    return 2 * c  # γ and β; running statistics are buffers


def res(width: int) -> int:
    return 2 * conv(3, width, width)


# fmt: off
G1_MARKET = (  # C = 128, N = 5 levels, bottleneck 8×4
    conv(3, 21, 128)                                                   # stem
    + res(128) + res(256) + res(384) + res(512) + res(640)             # encoder levels
    + conv(3, 128, 256) + conv(3, 256, 384) + conv(3, 384, 512) + conv(3, 512, 640)  # stride 2
    + fc(640 * 8 * 4, 64) + fc(64, 128 * 8 * 4)                        # bottleneck z = 64
    + res(128 + 640) + res(512 + 512) + res(384 + 384) + res(256 + 256) + res(128 + 128)
    + conv(1, 768, 512) + conv(1, 1024, 384) + conv(1, 768, 256) + conv(1, 512, 128)  # after ×2
    + conv(3, 256, 3)                                                  # to image
)
G1_DEEPFASHION = (  # C = 128, N = 6 levels, bottleneck 8×8
    conv(3, 21, 128)
    + res(128) + res(256) + res(384) + res(512) + res(640) + res(768)
    + conv(3, 128, 256) + conv(3, 256, 384) + conv(3, 384, 512) + conv(3, 512, 640)
    + conv(3, 640, 768)
    + fc(768 * 8 * 8, 64) + fc(64, 128 * 8 * 8)
    + res(128 + 768) + res(640 + 640) + res(512 + 512) + res(384 + 384) + res(256 + 256)
    + res(128 + 128)
    + conv(1, 896, 640) + conv(1, 1280, 512) + conv(1, 1024, 384) + conv(1, 768, 256)
    + conv(1, 512, 128)
    + conv(3, 256, 3)
)
G2_MARKET = (  # C = 128, N' = 3 levels; no skip from the full-resolution level (After2Noise)
    conv(3, 6, 128)
    + conv(3, 128, 128) + conv(3, 128, 128)                            # level 0
    + conv(3, 128, 256) + conv(3, 256, 256)                            # level 1
    + conv(3, 256, 384) + conv(3, 384, 384)                            # level 2
    + conv(3, 128, 128) + conv(3, 256, 256)                            # stride 2, same width
    + conv(3, 384 + 384, 128) + conv(3, 128, 128)                      # decoder + level 2
    + conv(3, 128 + 256, 128) + conv(3, 128, 128)                      # decoder + level 1
    + conv(3, 128, 128) + conv(3, 128, 128)                            # decoder, no skip
    + conv(3, 128, 3)
)
G2_DEEPFASHION = (  # C = 128, N' = 4 levels, every level a skip (AfterNoise)
    conv(3, 6, 128)
    + conv(3, 128, 128) + conv(3, 128, 128)
    + conv(3, 128, 256) + conv(3, 256, 256)
    + conv(3, 256, 384) + conv(3, 384, 384)
    + conv(3, 384, 512) + conv(3, 512, 512)
    + conv(3, 128, 128) + conv(3, 256, 256) + conv(3, 384, 384)
    + conv(3, 512 + 512, 128) + conv(3, 128, 128)
    + conv(3, 128 + 384, 128) + conv(3, 128, 128)
    + conv(3, 128 + 256, 128) + conv(3, 128, 128)
    + conv(3, 128 + 128, 128) + conv(3, 128, 128)
    + conv(3, 128, 3)
)
D_MARKET = (
    conv(5, 3, 64)
    + conv(5, 64, 128) + bn(128) + conv(5, 128, 256) + bn(256) + conv(5, 256, 512) + bn(512)
    + fc(512 * 8 * 4, 1)
)
D_DEEPFASHION = (
    conv(5, 3, 64)
    + conv(5, 64, 128) + bn(128) + conv(5, 128, 256) + bn(256) + conv(5, 256, 512) + bn(512)
    + conv(5, 512, 512) + bn(512)
    + fc(512 * 8 * 8, 1)
)
# fmt: on


@pytest.mark.parametrize(
    "size, g1, g2, d",
    [
        ((128, 64), G1_MARKET, G2_MARKET, D_MARKET),
        ((256, 256), G1_DEEPFASHION, G2_DEEPFASHION, D_DEEPFASHION),
    ],
)
def test_parameter_counts_at_paper_width(size, g1, g2, d):
    h, w = size
    assert count_parameters(G1(h, w, base_channels=128)) == g1
    assert count_parameters(G2(h, w, base_channels=128)) == g2
    assert count_parameters(Discriminator(h, w)) == d


def test_parameter_counts_known_values():
    """The written-out sums above, as numbers (for the README and for review)."""
    assert (G1_MARKET, G2_MARKET, D_MARKET) == (70_795_075, 6_058_883, 4_324_737)
    assert (G1_DEEPFASHION, G2_DEEPFASHION, D_DEEPFASHION) == (122_103_235, 12_696_067, 10_896_257)


@pytest.mark.parametrize("size", RESOLUTIONS)
def test_output_shapes(size):
    h, w = size
    torch.manual_seed(0)
    C = 8 if size == (128, 64) else 4
    g1, g2, d = G1(h, w, C), G2(h, w, C), Discriminator(h, w, base_channels=8)
    condition, target_map = torch.randn(2, 3, h, w), torch.randn(2, 18, h, w)
    with torch.no_grad():
        coarse = g1(condition, target_map)
        diff = g2(coarse, condition)
        logits = d(coarse + diff)
    assert coarse.shape == diff.shape == (2, 3, h, w)
    assert logits.shape == (2,)
    assert g1.bottleneck_hw == ((8, 4) if size == (128, 64) else (8, 8))
    assert g1.to_z.out_features == 64


def test_g2_skips_follow_the_reference_per_resolution():
    assert G2(128, 64, 8).skip_levels == [1, 2]  # Market: UAE_noFC_After2Noise
    assert G2(256, 256, 8).skip_levels == [0, 1, 2, 3]  # DeepFashion: UAE_noFC_AfterNoise
    assert G2(128, 64, 8, first_level_skip=True).skip_levels == [0, 1, 2]


@pytest.mark.parametrize("kernel", [3, 5])
def test_stride2_conv_pads_like_tensorflow_same(kernel):
    """TF "SAME" with stride 2 on an even size puts the odd padding at the bottom/right, so a
    centred kernel samples the odd pixels (symmetric padding would sample the even ones)."""
    conv2 = Conv2dSame(1, 1, kernel, stride=2)
    with torch.no_grad():
        conv2.weight.zero_()
        conv2.weight[0, 0, kernel // 2, kernel // 2] = 1.0
        conv2.bias.zero_()
        x = torch.arange(8 * 6, dtype=torch.float32).view(1, 1, 8, 6)
        assert torch.equal(conv2(x), x[:, :, 1::2, 1::2])


def test_factories_build_and_fail_loudly():
    assert isinstance(build_generator("g1", height=128, width=64, base_channels=8), G1)
    assert isinstance(build_generator("g2", height=128, width=64, base_channels=8), G2)
    assert isinstance(build_discriminator("dcgan", height=128, width=64), Discriminator)
    assert isinstance(build_discriminator("patch", height=128, width=64), PatchDiscriminator)
    with pytest.raises(ValueError, match="unknown generator 'unet'.*known: g1, g2"):
        build_generator("unet")
    with pytest.raises(ValueError, match="unknown discriminator 'pixel'.*known: dcgan, patch"):
        build_discriminator("pixel")


@pytest.mark.parametrize("size", [(100, 64), (128, 60)])
def test_unsupported_sizes_fail_loudly(size):
    with pytest.raises(ValueError, match="image (height|width)"):
        G1(*size, base_channels=8)


def test_channels_last_bf16_autocast_matches_fp32():
    torch.manual_seed(0)
    g1, g2, d = G1(128, 64, 8), G2(128, 64, 8), Discriminator(128, 64, 8)
    condition, target_map = torch.randn(2, 3, 128, 64), torch.randn(2, 18, 128, 64)
    with torch.no_grad():
        reference = g1(condition, target_map)
        for m in (g1, g2, d):
            m.to(memory_format=torch.channels_last)
        cl = {"memory_format": torch.channels_last}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            coarse = g1(condition.to(**cl), target_map.to(**cl))
            fake = coarse + g2(coarse, condition.to(**cl))
            logits = d(fake)
    assert coarse.dtype == torch.bfloat16 and coarse.shape == reference.shape
    assert torch.isfinite(fake).all() and torch.isfinite(logits.float()).all()
    # bf16 keeps ~3 significant digits; the coarse output must still be the same function.
    assert torch.allclose(coarse.float(), reference, atol=0.05 * reference.abs().max().item())


def test_leaky_g1_keeps_every_unit_alive_and_saves_its_slope(tmp_path):
    from pg2_pipeline.models import io
    from pg2_pipeline.paths import ProjectPaths

    torch.manual_seed(0)
    paper, leaky = G1(base_channels=8), G1(base_channels=8, relu_slope=0.2)
    assert not any(isinstance(m, torch.nn.LeakyReLU) for m in paper.modules())
    activations = [m for m in leaky.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert activations and not any(type(m) is torch.nn.ReLU for m in leaky.modules())
    assert all(m.negative_slope == 0.2 for m in activations)
    # the same parameters, so the paper's checkpoints and the leaky ones share their layout
    assert paper.state_dict().keys() == leaky.state_dict().keys()
    # the slope travels with the weights: the loaded G1 computes what the trained one did
    files = ProjectPaths(tmp_path).stage("stage1")
    files.folder.mkdir(parents=True)
    io.save_model(files, "g1", leaky, {"height": 128, "width": 64, "base_channels": 8, "relu_slope": 0.2})
    loaded = io.load_model(files, "g1").eval()
    x, pose = torch.rand(2, 3, 128, 64) * 2 - 1, torch.rand(2, 18, 128, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x, pose), leaky.eval()(x, pose))


# --- DeepFashion at 256×176 (PATN's crop, what later papers report) -------------------------
# fmt: off
G1_DEEPFASHION_176 = (  # the 256×256 network with an 8×6 bottleneck: only the two FCs change
    G1_DEEPFASHION - fc(768 * 8 * 8, 64) - fc(64, 128 * 8 * 8) + fc(768 * 8 * 6, 64) + fc(64, 128 * 8 * 6)
)
D_DEEPFASHION_176 = D_DEEPFASHION - fc(512 * 8 * 8, 1) + fc(512 * 8 * 6, 1)  # 8×6 before the linear layer
# fmt: on


def test_parameter_counts_at_256x176():
    """N = log2(H) − 2 = 6 levels as at 256×256 (the paper's rule depends on the height); G2 has
    no FC, so it is the 256×256 network, skips included."""
    assert count_parameters(G1(256, 176, base_channels=128)) == G1_DEEPFASHION_176 == 121_183_683
    assert count_parameters(G2(256, 176, base_channels=128)) == G2_DEEPFASHION
    assert count_parameters(Discriminator(256, 176)) == D_DEEPFASHION_176 == 10_888_065


def test_forward_and_backward_at_256x176():
    torch.manual_seed(0)
    g1, g2, d = G1(256, 176, 4), G2(256, 176, 4), Discriminator(256, 176, base_channels=8)
    assert g1.depth == 6 and g1.bottleneck_hw == (8, 6) and g2.skip_levels == [0, 1, 2, 3]
    condition, target_map = torch.randn(2, 3, 256, 176), torch.randn(2, 18, 256, 176)
    coarse = g1(condition, target_map)
    refined = coarse + g2(coarse, condition)
    logits = d(refined)
    assert coarse.shape == refined.shape == (2, 3, 256, 176) and logits.shape == (2,)
    (refined.square().mean() + logits.mean()).backward()
    for net in (g1, g2, d):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_odd_width_is_padded_like_tensorflow_and_cropped_back():
    """11 columns (176 / 16): TF "SAME" stride 2 pads one column on each side, so the 6 outputs
    are centred on columns 0, 2, …, 10; ×2 nearest upsampling cropped to 11 puts each back over
    its own column (the decoder's match_skip)."""
    from pg2_pipeline.models.g1 import match_skip

    conv2 = Conv2dSame(1, 1, 3, stride=2)
    with torch.no_grad():
        conv2.weight.zero_()
        conv2.weight[0, 0, 1, 1] = 1.0
        conv2.bias.zero_()
        x = torch.arange(8 * 11, dtype=torch.float32).view(1, 1, 8, 11)
        down = conv2(x)
    assert down.shape == (1, 1, 4, 6) and torch.equal(down, x[:, :, 1::2, 0::2])
    back = match_skip(torch.nn.functional.interpolate(down, scale_factor=2, mode="nearest"), x)
    assert back.shape == x.shape
    assert torch.equal(back[0, 0, 0], x[0, 0, 1, [0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10]])


@pytest.mark.parametrize("width", [168, 60])
def test_widths_that_halve_oddly_before_the_last_level_fail_loudly(width):
    height = 256 if width == 168 else 128  # 168 = 8 · 21: 21 → 11 → 6 would crop twice
    for build in (G1, G2, Discriminator):
        with pytest.raises(ValueError, match=f"image width {width} must be divisible by"):
            build(height, width, 8)
