"""Per-pair image metrics of the pose-transfer literature: SSIM under named protocols,
mask-SSIM, PSNR and L1, batched in torch.

Inputs are batches ``(B, C, H, W)`` (C = 3, RGB) of ``uint8`` images, or floating-point images
holding the same [0, 255] values (checked). Generated images should be quantised to uint8
first, as the published numbers were computed on saved 8-bit files. Every function returns a
``(B,)`` float64 tensor of per-pair scores on the input's device, so the caller can store
per-pair values and average them.

SSIM protocols
--------------
The published repositories compute "SSIM" three different ways; the numbers are not
comparable across them, so every SSIM here is computed under a protocol named in
:data:`SSIM_PROTOCOLS` (see each protocol's ``doc``). Each one reproduces
``skimage.metrics.structural_similarity`` (scikit-image 0.26) called per pair on ``(H, W, C)``
arrays with ``channel_axis=-1`` and the protocol's arguments, to 1e-5 (tests/evaluate/
test_metrics.py). What scikit-image does, and is reproduced exactly:

* means, variances and covariance come from a sliding window (uniform, or Gaussian weights),
  computed per channel with ``mode='reflect'`` borders, then SSIM's map
  ``(2 ux uy + C1)(2 vxy + C2) / ((ux² + uy² + C1)(vx + vy + C2))``, C1 = (K1 R)², C2 = (K2 R)²;
* the map is cropped by ``(win_size - 1) // 2`` on every side before averaging, and the
  channel scores are averaged. The crop removes exactly the pixels whose window reaches the
  border, so the reflected borders never matter: the filtering here is a *valid* filtering.

How it is computed: in float64 (as scikit-image does for uint8 and float64 input), always on
the [0, 255] values — a protocol on [0, 1] images uses data_range × 255 instead, the same
number, since SSIM is unchanged when images and data range are scaled together. Uniform
windows are box sums from one cumulative sum along H then W; SSIM is then written with sums
instead of means, so on integer images ``n·Σx² − (Σx)²`` is exact (no cancellation error).
The Gaussian window is a separable 11-tap filter applied as shifted adds. Every step runs on
a whole chunk of image planes (one channel of one pair) at once; chunks only bound the
working memory (a few MB on CPU, where the work is memory-bound and cache-sized chunks run
about 10× faster than one big batch).

Masks
-----
mask-SSIM (PG², Market-1501): both images are multiplied by the *target* pose mask
(:func:`pg2_pipeline.pose.maps.pose_masks` of the target keypoints) before scoring, under any
protocol. :func:`apply_mask` does the multiplication and is also the input of mask-IS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

_WORKSPACE_BYTES = 256 * 2**20  # float64 working memory of one SSIM chunk (about), GPU
_CPU_WORKSPACE_BYTES = 8 * 2**20  # on CPU: small enough to stay in cache
_MAPS = 5  # x, y, x², y², xy are filtered together


@dataclass(frozen=True)
class SSIMProtocol:
    """One published way of computing SSIM: the arguments given to scikit-image's
    ``structural_similarity`` (with ``channel_axis`` on the colour axis)."""

    name: str
    window: Literal["uniform", "gaussian"]
    win_size: int  # side of the uniform window; for Gaussian weights 2 * int(3.5 σ + .5) + 1
    sigma: float | None  # Gaussian σ (``gaussian_weights=True``), else None
    sample_covariance: bool  # skimage's use_sample_covariance: normalise by N - 1, not N
    scale: float  # the protocol scores x / scale (255: images in [0, 1]); see the module doc
    data_range: float | None  # None: per image, generated.max() - generated.min()
    doc: str
    K1: float = 0.01
    K2: float = 0.03

    @property
    def pad(self) -> int:
        """Pixels skimage crops on every side of the SSIM map before averaging."""
        return (self.win_size - 1) // 2


def _gaussian_win_size(sigma: float, truncate: float = 3.5) -> int:
    # skimage's Gaussian path: ndimage radius int(truncate * σ + 0.5), and the same width crop
    return 2 * int(truncate * sigma + 0.5) + 1


SSIM_PROTOCOLS: dict[str, SSIMProtocol] = {
    p.name: p
    for p in (
        SSIMProtocol(
            name="pg2",
            window="uniform",
            win_size=7,
            sigma=None,
            sample_covariance=True,
            scale=1.0,
            data_range=255.0,
            doc=(
                "PG² (Ma et al. 2017): scikit-image defaults on uint8 RGB — 7×7 uniform window, "
                "use_sample_covariance=True, data_range=255 (the uint8 dtype range), K1=0.01, "
                "K2=0.03, channel-wise mean; the map is cropped by 3 px before averaging. "
                "The protocol behind PG²'s table (SSIM and Market mask-SSIM)."
            ),
        ),
        SSIMProtocol(
            name="gaussian",
            window="gaussian",
            win_size=_gaussian_win_size(1.5),
            sigma=1.5,
            sample_covariance=False,
            scale=1.0,
            data_range=None,
            doc=(
                "Deformable GAN (Siarohin et al. 2018) / PATN (Zhu et al. 2019), also GFLA's "
                "'ssim_256': gaussian_weights=True, sigma=1.5, use_sample_covariance=False, "
                "data_range = generated.max() - generated.min() per image (over all channels, "
                "computed on the generated image as their code does), images in [0, 255]. "
                "Weights as scikit-image 0.26 makes them: truncate=3.5, an 11-tap Gaussian, "
                "map cropped by 5 px. NOTE: the scikit-image of those papers (compare_ssim, "
                "< 0.19) filtered with ndimage's default truncate=4.0, a 13-tap Gaussian, with "
                "the same 5 px crop; scores differ slightly. A constant generated image gives "
                "data_range 0 and NaN, as in scikit-image."
            ),
        ),
        SSIMProtocol(
            name="win51",
            window="uniform",
            win_size=51,
            sigma=None,
            sample_covariance=True,
            scale=255.0,
            data_range=1.0,
            doc=(
                "GFLA (Ren et al. 2020) / CFLD (Lu et al. 2024): images scaled to [0, 1] "
                "(x / 255), compare_ssim(gt, pred, data_range=1, win_size=51, "
                "multichannel=True): 51×51 uniform window, use_sample_covariance=True "
                "(default), K1=0.01, K2=0.03, channel-wise mean, map cropped by 25 px. "
                "Computed in float64, as the scikit-image of GFLA did for its float32 input "
                "(scikit-image >= 0.19 keeps float32 input in float32)."
            ),
        ),
    )
}
DEFAULT_SSIM_PROTOCOL = "pg2"


def ssim_protocol(name: str | SSIMProtocol) -> SSIMProtocol:
    """The protocol called ``name`` (a protocol object is returned as it is); a ValueError
    lists the known names."""
    if isinstance(name, SSIMProtocol):
        return name
    try:
        return SSIM_PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown SSIM protocol {name!r}; known: {', '.join(sorted(SSIM_PROTOCOLS))}") from None


# --------------------------------------------------------------------------------------------
# Input checks and masks


def check_images(images: Tensor, what: str = "images") -> None:
    """Raises unless ``images`` is a (B, C, H, W) uint8 tensor or a float tensor in [0, 255]."""
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{what} must be a (B, C, H, W) tensor, got {shape}")
    if images.dtype == torch.uint8:
        return
    if not images.is_floating_point():
        raise TypeError(f"{what} must be uint8 or floating point in [0, 255], got {images.dtype}")
    if images.numel():
        lo, hi = torch.aminmax(images)
        if not (float(lo) >= 0.0 and float(hi) <= 255.0):  # also rejects NaN
            raise ValueError(f"{what} must hold values in [0, 255] (uint8 scale), got [{float(lo)}, {float(hi)}]")


def _check_pair(generated: Tensor, target: Tensor) -> None:
    check_images(generated, "generated")
    check_images(target, "target")
    if generated.shape != target.shape:
        raise ValueError(f"generated {tuple(generated.shape)} and target {tuple(target.shape)} differ in shape")
    if generated.device != target.device:
        raise ValueError(f"generated is on {generated.device}, target on {target.device}")


def apply_mask(images: Tensor, mask: Tensor) -> Tensor:
    """``images * mask``: (B, C, H, W) images, (B, 1, H, W) bool (or 0/1) masks; keeps dtype."""
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != images.shape[0] or mask.shape[2:] != images.shape[2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching images {tuple(images.shape)}, got {tuple(mask.shape)}")
    return images * mask.to(device=images.device, dtype=torch.bool).to(images.dtype)


def target_pose_masks(target_yx: Tensor, height: int, width: int) -> Tensor:
    """The PG² pose masks ``(B, 1, H, W)`` of (B, 18, 2) (y, x) target keypoints."""
    from pg2_pipeline.pose.maps import pose_masks

    yx = torch.as_tensor(target_yx)
    if not yx.is_floating_point():
        yx = yx.float()
    return pose_masks(yx, height, width)


# --------------------------------------------------------------------------------------------
# SSIM


def _box_sums(x: Tensor, size: int, dim: int) -> Tensor:
    """Sums over every full window of ``size`` along ``dim`` (length L -> L - size + 1), from
    one cumulative sum with a leading zero: exact on integer data in float64."""
    length = x.shape[dim]
    n = length - size + 1
    shape = list(x.shape)
    shape[dim] = length + 1
    c = x.new_empty(shape)
    c.narrow(dim, 0, 1).zero_()
    torch.cumsum(x, dim=dim, out=c.narrow(dim, 1, length))
    return c.narrow(dim, size, n) - c.narrow(dim, 0, n)


def _gaussian_taps(sigma: float, size: int) -> list[float]:
    # ndimage's _gaussian_kernel1d: exp(-x² / 2σ²) over x = -r..r, normalised to sum 1
    r = size // 2
    w = [math.exp(-0.5 / sigma**2 * i * i) for i in range(-r, r + 1)]
    s = math.fsum(w)
    return [v / s for v in w]


def _weighted_valid(x: Tensor, taps: list[float], dim: int) -> Tensor:
    n = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, n) * taps[0]
    for k in range(1, len(taps)):
        out.add_(x.narrow(dim, k, n), alpha=taps[k])
    return out


def _window_stats(maps: Tensor, p: SSIMProtocol) -> tuple[Tensor, float]:
    """The protocol's window over the last two dims of ``maps`` (valid part only), as window
    sums and the weight total they must be divided by to be means (N = win² for a uniform
    window, 1 for the normalised Gaussian)."""
    if p.window == "uniform":
        return _box_sums(_box_sums(maps, p.win_size, -2), p.win_size, -1), float(p.win_size**2)
    taps = _gaussian_taps(p.sigma, p.win_size)
    return _weighted_valid(_weighted_valid(maps, taps, -2), taps, -1), 1.0


def _ssim_planes(x: Tensor, y: Tensor, p: SSIMProtocol, data_range: Tensor) -> Tensor:
    """Mean SSIM of each plane: x (generated), y (target) (P, H, W) float64, data_range (P,)."""
    s, n = _window_stats(torch.stack([x, y, x * x, y * y, x * y]), p)  # (5, P, H', W')
    sx, sy, sxx, syy, sxy = s.unbind(0)
    # skimage's formula with every mean written as sum / n and both fractions multiplied by
    # n² top and bottom: on integer data n·sxx - sx² is exact, no cancellation error.
    np_ = p.win_size**2
    cov_norm = np_ / (np_ - 1) if p.sample_covariance else 1.0
    r = data_range.view(-1, 1, 1)
    c1 = (p.K1 * r) ** 2 * (n * n)
    c2 = (p.K2 * r) ** 2 * (n * n)
    sxsy = sx * sy
    a1 = (2 * sxsy).add_(c1)
    b1 = (sx * sx).addcmul_(sy, sy).add_(c1)
    a2 = (n * sxy).sub_(sxsy).mul_(2 * cov_norm).add_(c2)
    b2 = (n * (sxx + syy)).sub_(sx * sx).sub_(sy * sy).mul_(cov_norm).add_(c2)
    return (a1.mul_(a2)).div_(b1.mul_(b2)).mean(dim=(1, 2))


def ssim(
    generated: Tensor,
    target: Tensor,
    protocol: str | SSIMProtocol = DEFAULT_SSIM_PROTOCOL,
    *,
    mask: Tensor | None = None,
) -> Tensor:
    """Per-pair SSIM ``(B,)`` float64 under the named protocol (see :data:`SSIM_PROTOCOLS`).

    ``generated`` and ``target``: (B, C, H, W) uint8 (or float in [0, 255]); the order matters
    for the ``gaussian`` protocol, whose data range is taken from the generated image.
    ``mask`` (B, 1, H, W): multiply both images by it first (mask-SSIM, see :func:`mask_ssim`).
    """
    p = ssim_protocol(protocol)
    _check_pair(generated, target)
    if mask is not None:
        generated, target = apply_mask(generated, mask), apply_mask(target, mask)
    b, c, h, w = generated.shape
    if min(h, w) < p.win_size:
        raise ValueError(f"SSIM protocol {p.name!r} needs images of at least {p.win_size} px a side, got {h}×{w}")
    # Planes (one channel of one pair) are independent until the final mean: chunks of planes
    # keep the float64 working set small (cache-sized on CPU, where this is memory-bound).
    budget = _WORKSPACE_BYTES if generated.device.type != "cpu" else _CPU_WORKSPACE_BYTES
    chunk = max(1, budget // (h * w * 8 * 2 * _MAPS))
    gen = generated.reshape(b * c, h, w)
    tgt = target.reshape(b * c, h, w)
    if p.data_range is None:
        data_range = (generated.amax(dim=(1, 2, 3)) - generated.amin(dim=(1, 2, 3))).to(torch.float64)
    else:
        # SSIM is unchanged when images and data range are scaled together: the [0, 1]
        # protocols run on the [0, 255] values (exact integers) with data_range * 255.
        data_range = torch.full((b,), p.data_range * p.scale, dtype=torch.float64, device=generated.device)
    data_range = data_range.repeat_interleave(c)
    out = torch.empty(b * c, dtype=torch.float64, device=generated.device)
    for start in range(0, b * c, chunk):
        x = gen[start : start + chunk].to(torch.float64)
        y = tgt[start : start + chunk].to(torch.float64)
        out[start : start + chunk] = _ssim_planes(x, y, p, data_range[start : start + chunk])
    return out.view(b, c).mean(dim=1)


def mask_ssim(
    generated: Tensor,
    target: Tensor,
    target_yx: Tensor,
    protocol: str = DEFAULT_SSIM_PROTOCOL,
) -> Tensor:
    """PG²'s mask-SSIM ``(B,)``: SSIM of both images multiplied by the PG² pose mask of the
    *target* keypoints ``target_yx`` (B, 18, 2) (y, x), -1 missing."""
    _check_pair(generated, target)
    masks = target_pose_masks(torch.as_tensor(target_yx).to(generated.device), *generated.shape[2:])
    return ssim(generated, target, protocol, mask=masks)


# --------------------------------------------------------------------------------------------
# PSNR and L1

PSNR_DATA_RANGE = 255.0


def psnr(generated: Tensor, target: Tensor) -> Tensor:
    """Per-pair PSNR in dB ``(B,)`` float64, data range 255, MSE over all channels and pixels
    (``skimage.metrics.peak_signal_noise_ratio`` with ``data_range=255``).

    Identical images give ``+inf`` — reported as is, not capped: a cap (say 100 dB) would be an
    invented number, and an infinite mean flags a real problem (a generator that copies its
    target). GFLA's PSNR on [0, 1] floats with data_range=1 is the same number.
    """
    _check_pair(generated, target)
    d = generated.to(torch.float64) - target.to(torch.float64)
    mse = (d * d).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(PSNR_DATA_RANGE**2 / mse)


def l1(generated: Tensor, target: Tensor) -> Tensor:
    """Per-pair mean absolute error ``(B,)`` float64 in [0, 1] units (|a - b| / 255 averaged
    over channels and pixels): GFLA's ``compare_l1`` on images scaled to [0, 1]."""
    _check_pair(generated, target)
    return (generated.to(torch.float64) - target.to(torch.float64)).abs().mean(dim=(1, 2, 3)) / 255.0
