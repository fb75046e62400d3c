"""G2, the refinement generator of PG² (Ma et al. 2017, Sec. 3.2, Fig. 2 bottom).

A plain U-Net (conv pairs, no residual adds, no fully connected layer) that looks at G1's coarse
result beside the condition image and predicts a **difference map**: the refined image is
``I_B' = G1(I_A, P_B) + G2(G1(I_A, P_B), I_A)`` (paper Eq. 4). Built as in the reference code,
which uses two variants of the same U-Net:

* 128×64 (Market-1501): ``UAE_noFC_After2Noise`` — the full-resolution encoder level is *not*
  kept as a skip; the last decoder level sees only the upsampled features.
* 256×256 (DeepFashion): ``UAE_noFC_AfterNoise`` — every encoder level is a skip.

``first_level_skip`` selects between them (default: the reference's choice for the size, the
DeepFashion variant for every 256-row size, so also for the 256×176 crop of later papers). In
both, the stride-2 conv keeps the level's width (C·(i+1) → C·(i+1)); the next level's first conv
widens it. The reference's optional noise input is off (noise_dim=0) in PG² and is not built.
"""

from __future__ import annotations

import torch
from torch import nn

from pg2_pipeline.models.g1 import (
    IMAGE_CHANNELS,
    Conv2dSame,
    conv_relu,
    encoder_depth,
    init_tf_slim_,
)


class G2(nn.Module):
    """G2(G1 output, I_A) -> difference map (B, 3, H, W), linear output.

    Args:
        height, width: image size; N' = log2(H) − 4 levels (3 at 128×64, 4 at 256×256 and
            256×176, whose three halvings 176 → 88 → 44 → 22 stay exact).
        base_channels: C, 128 in the paper.
        first_level_skip: keep the full-resolution encoder level as a skip. None = as the
            reference code does for this size (True at 256 rows: 256×256, 256×176).
        zero_init_output: start the output conv at zero, so that stage 2 begins exactly at G1's
            result (I_B' = G1 + 0). Not in the reference (which starts from a random difference
            map); short CPU runs use it so that stage 2 never begins worse than stage 1.
    """

    def __init__(
        self,
        height: int = 128,
        width: int = 64,
        base_channels: int = 128,
        first_level_skip: bool | None = None,
        zero_init_output: bool = False,
    ):
        super().__init__()
        C = base_channels
        N = self.depth = encoder_depth(height, width) - 2
        if N < 1:
            raise ValueError(f"G2 needs an image height of at least 32, got {height}")
        if first_level_skip is None:
            first_level_skip = height >= 256
        self.height, self.width = height, width
        self.base_channels = C
        self.first_level_skip = first_level_skip
        self.skip_levels = [i for i in range(N) if i > 0 or first_level_skip]

        self.stem = conv_relu(2 * IMAGE_CHANNELS, C)
        # Encoder level i: two conv+ReLU at C·(i+1) (the first widens from C·i, or from the
        # stem's C), then (not after the last level) a stride-2 conv+ReLU at the same width.
        self.encoder = nn.ModuleList(
            nn.Sequential(conv_relu(C * max(i, 1), C * (i + 1)), conv_relu(C * (i + 1), C * (i + 1))) for i in range(N)
        )
        self.downsample = nn.ModuleList(conv_relu(C * (i + 1), C * (i + 1), stride=2) for i in range(N - 1))
        # Decoder step idx: concat the skip of level N−1−idx (if kept), two conv+ReLU to C, then
        # (not after the last step) nearest ×2. At idx 0 the "skip" is the bottleneck itself,
        # so the reference concatenates the deepest level with itself (2·C·N channels).
        self.decoder = nn.ModuleList(
            nn.Sequential(conv_relu(self._decoder_in(idx), C), conv_relu(C, C)) for idx in range(N)
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.to_image = Conv2dSame(C, IMAGE_CHANNELS, 3)  # linear: a difference can be negative
        init_tf_slim_(self)
        if zero_init_output:
            nn.init.zeros_(self.to_image.weight)
            nn.init.zeros_(self.to_image.bias)

    def _decoder_in(self, idx: int) -> int:
        C, N = self.base_channels, self.depth
        level = N - 1 - idx
        incoming = C * N if idx == 0 else C
        return incoming + (C * (level + 1) if level in self.skip_levels else 0)

    def forward(self, g1_output: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        N = self.depth
        x = torch.cat([g1_output, condition], dim=1)  # (B, 6, H, W)
        x = self.stem(x)  # (B, C, H, W)

        skips = {}
        for i, level in enumerate(self.encoder):
            x = level(x)  # (B, C·(i+1), H/2^i, W/2^i)
            if i in self.skip_levels:
                skips[i] = x
            if i < N - 1:
                x = self.downsample[i](x)  # (B, C·(i+1), H/2^(i+1), W/2^(i+1))

        for idx, level in enumerate(self.decoder):
            # s = 2^(N−1−idx)
            if N - 1 - idx in skips:
                x = torch.cat([x, skips[N - 1 - idx]], dim=1)  # (B, decoder_in(idx), H/s, W/s)
            x = level(x)  # (B, C, H/s, W/s)
            if idx < N - 1:
                x = self.upsample(x)  # (B, C, 2H/s, 2W/s)
        return self.to_image(x)  # (B, 3, H, W) difference map
