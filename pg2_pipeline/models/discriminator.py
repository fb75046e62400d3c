"""D, the DCGAN discriminator of PG² stage 2 (Ma et al. 2017, Sec. 3.3).

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
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pg2_pipeline.models.g1 import BOTTLENECK_HEIGHT, IMAGE_CHANNELS, Conv2dSame

WEIGHT_STD = 0.02
MAX_WIDTH_FACTOR = 8  # widths stop growing at 8·base (512)


class Discriminator(nn.Module):
    """D(image) -> logit (B,). Images in [-1, 1].

    Args:
        height, width: image size; D downsamples log2(H/8) times (4 at 128×64, 5 at 256×256).
        base_channels: width of the first conv (DIM = 64 in the reference).
    """

    def __init__(self, height: int = 128, width: int = 64, base_channels: int = 64):
        super().__init__()
        if height < 2 * BOTTLENECK_HEIGHT or height & (height - 1):
            raise ValueError(f"image height must be a power of two >= 16, got {height}")
        num_convs = int(math.log2(height // BOTTLENECK_HEIGHT))
        if width % 2**num_convs:
            raise ValueError(f"image width {width} must be divisible by {2**num_convs}")
        self.height, self.width = height, width

        layers: list[nn.Module] = []
        in_channels = IMAGE_CHANNELS
        for i in range(num_convs):
            out_channels = base_channels * min(2**i, MAX_WIDTH_FACTOR)
            layers.append(Conv2dSame(in_channels, out_channels, 5, stride=2))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        final_hw = (height // 2**num_convs) * (width // 2**num_convs)  # 8·4 or 8·8
        self.to_logit = nn.Linear(in_channels * final_hw, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        bound = WEIGHT_STD * math.sqrt(3.0)  # a uniform with std 0.02
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.features(image)  # (B, 512, 8, W/2^n)
        return self.to_logit(x.flatten(1)).squeeze(1)  # (B,)
