"""SSIM protocols, mask-SSIM, PSNR and L1 equal scikit-image's per-pair results."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio

from pg2_pipeline.evaluate.metrics import (
    SSIM_PROTOCOLS,
    apply_mask,
    l1,
    mask_ssim,
    psnr,
    ssim,
    ssim_protocol,
    target_pose_masks,
)

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `tests` is a plain folder; the reference is imported by path
    sys.path.insert(0, _ROOT)
from tests.evaluate.reference_ssim import skimage_ssim  # noqa: E402

SIZES = [(128, 64), (256, 256)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = 1e-5


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    rows = np.linspace(0, img.shape[0] - 1, h).astype(int)
    cols = np.linspace(0, img.shape[1] - 1, w).astype(int)
    return img[rows][:, cols]


def structured_pairs(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(4, 3, h, w) uint8 pairs of photographs, perturbed: noise, a shift, a brightness change
    with clipping (flat saturated areas), and a large flat image vs a textured one."""
    rng = np.random.default_rng(h * w)
    photos = [_resize(f(), h, w) for f in (skimage.data.astronaut, skimage.data.coffee, skimage.data.chelsea)]
    a = np.stack(photos + [np.full((h, w, 3), 250, np.uint8)])
    b = np.stack(
        [
            np.clip(photos[0] + rng.normal(0, 12, photos[0].shape), 0, 255),
            np.roll(photos[1], (2, 3), axis=(0, 1)),
            np.clip(photos[2].astype(float) * 1.4 + 30, 0, 255),
            photos[0],
        ]
    ).astype(np.uint8)
    return b.transpose(0, 3, 1, 2).copy(), a.transpose(0, 3, 1, 2).copy()


def random_pairs(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(h + w)
    t = rng.integers(0, 256, (3, 3, h, w), dtype=np.uint8)
    g = np.clip(t + rng.normal(0, 40, t.shape), 0, 255).astype(np.uint8)
    g[2] = rng.integers(0, 256, (3, h, w))  # an unrelated pair
    return g, t


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("protocol", sorted(SSIM_PROTOCOLS))
def test_ssim_equals_skimage(protocol, kind, size):
    gen, tgt = (random_pairs if kind == "random" else structured_pairs)(*size)
    got = ssim(torch.from_numpy(gen), torch.from_numpy(tgt), protocol).numpy()
    want = np.array([skimage_ssim(g, t, protocol) for g, t in zip(gen, tgt)])
    assert got.shape == (len(gen),) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("protocol", sorted(SSIM_PROTOCOLS))
def test_ssim_float_input_and_device(protocol, device):
    gen, tgt = structured_pairs(128, 64)
    g, t = torch.from_numpy(gen).to(device), torch.from_numpy(tgt).to(device)
    as_uint8 = ssim(g, t, protocol)
    as_float = ssim(g.float(), t.double(), protocol)
    assert as_uint8.device.type == device
    torch.testing.assert_close(as_float, as_uint8, rtol=0, atol=1e-12)
    assert torch.all(ssim(t, t, protocol) == 1.0)


def test_gaussian_protocol_takes_range_from_generated():
    gen, tgt = structured_pairs(128, 64)
    gen[0] = gen[0] // 2  # a narrower range than the target's
    g, t = torch.from_numpy(gen[:1]), torch.from_numpy(tgt[:1])
    forward, backward = float(ssim(g, t, "gaussian")), float(ssim(t, g, "gaussian"))
    assert forward != pytest.approx(backward, abs=1e-3)
    assert forward == pytest.approx(skimage_ssim(gen[0], tgt[0], "gaussian"), abs=TOL)


def test_unknown_protocol_lists_names():
    with pytest.raises(ValueError, match="gaussian, pg2, win51"):
        ssim_protocol("ms-ssim")
    with pytest.raises(ValueError, match="known"):
        ssim(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "nope")


def test_protocols_are_documented():
    assert set(SSIM_PROTOCOLS) == {"pg2", "gaussian", "win51"}
    for name, p in SSIM_PROTOCOLS.items():
        assert p.name == name and len(p.doc) > 80
    assert SSIM_PROTOCOLS["gaussian"].win_size == 11  # skimage 0.26: truncate 3.5, σ 1.5


def test_bad_inputs_fail_loudly():
    x = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        ssim(x.float() - 1, x)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(x, x[:1])
    with pytest.raises(ValueError, match="at least 51"):
        ssim(x[..., :40, :40], x[..., :40, :40], "win51")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        psnr(x[0], x[0])


def test_mask_ssim_is_ssim_of_masked_images():
    gen, tgt = structured_pairs(128, 64)
    yx = np.full((len(gen), 18, 2), -1.0, np.float32)
    # a standing person: nose, neck, shoulders, hips, knees, ankles (y, x)
    for j, (y, x) in {
        0: (14, 32),
        1: (28, 32),
        2: (30, 22),
        5: (30, 42),
        8: (66, 26),
        11: (66, 38),
        9: (90, 26),
        12: (90, 38),
        10: (118, 26),
        13: (118, 38),
    }.items():
        yx[:, j] = (y, x)
    yx[1, 9:11] = -1  # a pose with a missing leg
    masks = target_pose_masks(torch.from_numpy(yx), 128, 64)
    assert masks.dtype == torch.bool and masks.shape == (len(gen), 1, 128, 64) and masks.any()
    m = masks.numpy()
    for protocol in SSIM_PROTOCOLS:
        got = mask_ssim(torch.from_numpy(gen), torch.from_numpy(tgt), torch.from_numpy(yx), protocol).numpy()
        want = [skimage_ssim(g * k, t * k, protocol) for g, t, k in zip(gen, tgt, m)]
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    masked = apply_mask(torch.from_numpy(gen), masks)
    assert masked.dtype == torch.uint8 and torch.all(masked[~masks.expand_as(masked)] == 0)


def test_psnr_matches_skimage_and_is_inf_for_identical_images():
    gen, tgt = structured_pairs(128, 64)
    got = psnr(torch.from_numpy(gen), torch.from_numpy(tgt)).numpy()
    want = [peak_signal_noise_ratio(t, g, data_range=255) for g, t in zip(gen, tgt)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    same = psnr(torch.from_numpy(tgt), torch.from_numpy(tgt))
    assert torch.all(torch.isposinf(same))  # reported as is, not capped


def test_l1_in_unit_range():
    gen, tgt = structured_pairs(128, 64)
    got = l1(torch.from_numpy(gen), torch.from_numpy(tgt)).numpy()
    want = np.abs(gen.astype(float) / 255 - tgt.astype(float) / 255).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    black, white = torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    assert float(l1(black, white)) == 1.0 and float(l1(black, black)) == 0.0
