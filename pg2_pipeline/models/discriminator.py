"""D, the DCGAN discriminator of PG² stage 2 (Ma et al. 2017, Sec. 3.3), and the PatchGAN D of
the PG²+ variants.

As in the reference code (``DCGANDiscriminator`` / ``DCGANDiscriminator_256`` of its
``wgan_gp_128x64.py``, from the improved-WGAN ``tflib``): 5×5 stride-2 convs with widths
64 → 128 → 256 → 512 (→ 512 at 256×256) until the map has 8 rows, BatchNorm from the second
conv on, LeakyReLU(0.2), then one linear layer to a single logit. D judges single images; the
"triplet" comes from what it is shown (target, condition, generated), see ``train.steps``.

Initialisation, as tflib does under ``set_weights_stdev(0.02)``: conv and linear weights drawn
**uniformly** with standard deviation 0.02 (U(−0.02·√3, +0.02·√3)); DCGAN's paper draws them
from N(0, 0.02) — same scale, different shape. Biases 0; BatchNorm γ = 1, β = 0 (tflib's values;
the PyTorch DCGAN example draws γ from N(1, 0.02) instead). The convs keep their bias even before
BatchNorm, as in tflib (redundant, but it is in the parameter count).

BatchNorm: eps 1e-5 as tflib's fused batch norm, momentum 0.1 (TF decay 0.9). The reference
always normalises with the statistics of the current batch (D is never run in inference mode),
which PyTorch does in ``train()`` mode; keep D in train mode whenever it is used.

Beyond the paper (PG²+ variants, off by default): ``in_channels`` > 3 lets D see the condition
image and/or the target pose map beside the judged image (a conditional D, as the paper's text
describes but its code does not build); ``spectral_norm`` normalises every conv and linear
weight by its largest singular value (Miyato et al. 2018); :class:`PatchDiscriminator` judges
overlapping patches instead of the whole image (pix2pix, Isola et al. 2017).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pg2_pipeline.models.g1 import BOTTLENECK_HEIGHT, IMAGE_CHANNELS, Conv2dSame, downsampled

WEIGHT_STD = 0.02
MAX_WIDTH_FACTOR = 8  # widths stop growing at 8·base (512)


class Discriminator(nn.Module):
    """D(image) -> logit (B,). Images in [-1, 1].

    Args:
        height, width: image size; D downsamples log2(H/8) times (4 at 128×64, 5 at 256×256
            and 256×176). As in G1, only the last halving may meet an odd width, padded like TF
            "SAME" (256×176: 11 → 6 columns, an 8×6 map before the linear layer).
        base_channels: width of the first conv (DIM = 64 in the reference).
        in_channels: 3 (an image, the paper) or more (image + condition and/or pose map).
        spectral_norm: spectral normalisation of every conv and linear weight (not in the paper).
    """

    def __init__(self, height: int = 128, width: int = 64, base_channels: int = 64, in_channels: int = IMAGE_CHANNELS,
                 spectral_norm: bool = False):  # fmt: skip
        super().__init__()
        if height < 2 * BOTTLENECK_HEIGHT or height & (height - 1):
            raise ValueError(f"image height must be a power of two >= 16, got {height}")
        num_convs = int(math.log2(height // BOTTLENECK_HEIGHT))
        if width < 1 or width % 2 ** (num_convs - 1):
            raise ValueError(f"image width {width} must be divisible by {2 ** (num_convs - 1)}")
        self.height, self.width = height, width

        layers: list[nn.Module] = []
        for i in range(num_convs):
            out_channels = base_channels * min(2**i, MAX_WIDTH_FACTOR)
            layers.append(Conv2dSame(in_channels, out_channels, 5, stride=2))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        final_hw = (height // 2**num_convs) * downsampled(width, num_convs)  # 8·4, 8·8 or 8·6
        self.to_logit = nn.Linear(in_channels * final_hw, 1)
        _init_weights(self)
        if spectral_norm:
            _spectral_norm(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.features(image)  # (B, 512, 8, ceil(W/2^n))
        return self.to_logit(x.flatten(1)).squeeze(1)  # (B,)


class PatchDiscriminator(nn.Module):
    """PatchGAN D(image) -> logits (B, h, w), one per overlapping 34×34 patch (PG²+ variants).

    pix2pix's layout with two stride-2 levels: 4×4 convs 64 (s2) → 128 (s2, BN) → 256 (s1, BN)
    → 1 (s1), LeakyReLU(0.2); at 128×64 that is a 30×14 grid of logits. Initialised like the
    DCGAN D (uniform, std 0.02).
    """

    def __init__(self, height: int = 128, width: int = 64, base_channels: int = 64, in_channels: int = IMAGE_CHANNELS,
                 spectral_norm: bool = False):  # fmt: skip
        super().__init__()
        if height < 32 or width < 32:
            raise ValueError(f"PatchDiscriminator needs images of at least 32×32, got {height}×{width}")
        self.height, self.width = height, width
        c = base_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 4, stride=1, padding=1), nn.BatchNorm2d(4 * c), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * c, 1, 4, stride=1, padding=1),
        )  # fmt: skip
        _init_weights(self)
        if spectral_norm:
            _spectral_norm(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.features(image).squeeze(1)  # (B, h, w)


def _init_weights(module: nn.Module) -> None:
    bound = WEIGHT_STD * math.sqrt(3.0)  # a uniform with std 0.02
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _spectral_norm(module: nn.Module) -> None:
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
