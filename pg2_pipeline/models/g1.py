"""G1, the pose-integration generator of PG² (Ma et al. 2017, Sec. 3.1, Fig. 2 top).

A U-Net-like residual auto-encoder: the condition image I_A and the target pose map P_B go in,
a coarse image of the person in pose B comes out. A fully connected bottleneck (z = 64) lets
every output pixel see the whole input, which is how the network moves appearance over large
pose changes. Built as in the reference code (``GeneratorCNN_Pose_UAEAfterResidual`` for
128×64 and ``..._256`` for 256×256, ReLU activations, no noise input, no normalisation).

This module also holds :class:`Conv2dSame` and :func:`init_tf_slim_`, the two building blocks G2
and D share with G1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pg2_pipeline.skeleton import NUM_JOINTS

IMAGE_CHANNELS = 3
POSE_CHANNELS = NUM_JOINTS  # one map per OpenPose-18 keypoint
BOTTLENECK_HEIGHT = 8  # the reference's min_fea_map_H: the encoder stops at 8 rows


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``padding="SAME"`` (the reference is TF 1.4 / slim).

    For stride 1 and an odd kernel TF pads symmetrically, exactly like ``padding=k // 2``, so
    that case is passed to cuDNN/oneDNN unchanged. For stride 2 on an even size TF pads
    ``k - 2`` in total with the odd pixel at the bottom/right (k=3: 0 top, 1 bottom; k=5: 1 top,
    2 bottom). Symmetric PyTorch padding gives the same output size but samples the grid one
    pixel earlier. We pad like TF (one extra ``F.pad``, which keeps ``channels_last``) so that
    the layers compute the same function as the reference's and its checkpoints could be ported.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        if kernel_size % 2 != 1:
            raise ValueError(f"Conv2dSame supports odd kernels only, got {kernel_size}")
        padding = kernel_size // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pad_h = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        pad_w = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


def _same_padding(size: int, kernel: int, stride: int) -> int:
    """Total padding TF "SAME" adds along one axis (tf.nn.conv2d documentation)."""
    out = math.ceil(size / stride)
    return max((out - 1) * stride + kernel - size, 0)


def init_tf_slim_(module: nn.Module) -> None:
    """The generators' initialisation in the reference: ``slim.conv2d`` and
    ``slim.fully_connected`` defaults, i.e. Glorot-uniform weights and zero biases (PyTorch's own
    default is a Kaiming-uniform variant). torch's fan computation for a (out, in, k, k) kernel
    is TF's (k·k·in, k·k·out)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def conv_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, relu_slope: float = 0.0):
    """slim.conv2d(..., activation_fn=tf.nn.relu) — the only layer type of G1 and G2.
    ``relu_slope`` > 0: a leaky ReLU with that negative slope instead (not in the paper)."""
    activation = nn.LeakyReLU(relu_slope, inplace=True) if relu_slope else nn.ReLU(inplace=True)
    return nn.Sequential(Conv2dSame(in_channels, out_channels, kernel_size, stride), activation)


def encoder_depth(height: int, width: int) -> int:
    """N = log2(H) − 2 levels (5 at 128×64, 6 at 256×256 and 256×176); the encoder halves the
    size N−1 times and ends at 8 rows. Fails loudly on sizes the bottleneck cannot be built for.

    The paper's rule ties N to the height alone, so the width need not halve exactly every time:
    all halvings but the last must be exact (W divisible by 2^(N−2)); the last may meet an odd
    width, which the stride-2 conv pads like TF "SAME" (DeepFashion 256×176: 176 → … → 11 → 6,
    bottleneck 8×6) and the decoder crops back (:func:`match_skip`). Choosing fewer levels to
    keep 176 integral would change the network (a 16×11 bottleneck) for one width.
    """
    if height < 16 or height & (height - 1):
        raise ValueError(f"image height must be a power of two >= 16, got {height}")
    depth = int(math.log2(height)) - 2
    factor = 2 ** max(depth - 2, 0)
    if width < 1 or width % factor:
        raise ValueError(
            f"image width {width} must be divisible by {factor} (2^(N-2), N={depth} levels for height {height}; "
            "only the last halving may meet an odd width)"
        )
    return depth


def downsampled(size: int, times: int) -> int:
    """``size`` after ``times`` stride-2 TF "SAME" convs: ceil(size / 2) each time."""
    for _ in range(times):
        size = -(-size // 2)
    return size


def match_skip(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """The ×2-upsampled ``x`` cut to the size of the encoder level it meets. Only differs where
    a stride-2 conv met an odd size n: TF "SAME" padded it to ceil(n/2) outputs, the i-th centred
    on input 2i, so upsampled rows/columns 0..n−1 line up with the skip's and the one past the
    end is dropped. Where the sizes agree (every level at 128×64 and 256×256) ``x`` is returned
    unchanged."""
    if x.shape[-2:] == skip.shape[-2:]:
        return x
    return x[..., : skip.shape[-2], : skip.shape[-1]]


class ResidualBlock(nn.Module):
    """conv3×3+ReLU, conv3×3+ReLU, then the identity added; no activation after the add
    (reference: ``x = x + res``). Width is kept, so the shortcut needs no projection."""

    def __init__(self, channels: int, relu_slope: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            conv_relu(channels, channels, relu_slope=relu_slope), conv_relu(channels, channels, relu_slope=relu_slope)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class G1(nn.Module):
    """G1(I_A, P_B) -> coarse I_B. Images in [-1, 1]; the output is linear (no tanh).

    Args:
        height, width: image size (128×64 Market-1501, 256×256 DeepFashion as in PG², 256×176
            DeepFashion as in PATN and later papers).
        base_channels: C, 128 in the paper; smaller for CPU runs.
        z_dim: bottleneck size, 64 in the paper.
        pose_channels: channels of the pose map (18 OpenPose keypoints).
        relu_slope: 0 (the paper) uses ReLU; > 0 a leaky ReLU with that negative slope, whose
            units cannot die (a narrow CPU G1 loses ~10-15% of its ReLU units to dead ones).
    """

    def __init__(
        self,
        height: int = 128,
        width: int = 64,
        base_channels: int = 128,
        z_dim: int = 64,
        pose_channels: int = POSE_CHANNELS,
        relu_slope: float = 0.0,
    ):
        super().__init__()
        C, a = base_channels, relu_slope
        N = self.depth = encoder_depth(height, width)
        self.height, self.width = height, width
        self.bottleneck_hw = (BOTTLENECK_HEIGHT, downsampled(width, N - 1))  # (8, 4), (8, 8) or (8, 6)
        h, w = self.bottleneck_hw
        self.base_channels = C

        self.stem = conv_relu(IMAGE_CHANNELS + pose_channels, C, relu_slope=a)
        # Encoder level i: residual block at C·(i+1), then (not after the last level) a
        # stride-2 conv to C·(i+2).
        self.encoder = nn.ModuleList(ResidualBlock(C * (i + 1), a) for i in range(N))
        self.downsample = nn.ModuleList(
            conv_relu(C * (i + 1), C * (i + 2), stride=2, relu_slope=a) for i in range(N - 1)
        )
        # Bottleneck: both FCs linear (activation_fn=None in the reference).
        self.to_z = nn.Linear(C * N * h * w, z_dim)
        self.from_z = nn.Linear(z_dim, C * h * w)
        # Decoder step idx concatenates the skip of encoder level N−1−idx, so its residual block
        # runs at C·(N+1) for idx 0 (C from the FC + C·N) and at 2·C·(N−idx) afterwards; then
        # nearest ×2 and a 1×1 conv + ReLU to C·(N−1−idx).
        self.decoder = nn.ModuleList(ResidualBlock(self._decoder_width(idx), a) for idx in range(N))
        self.upsample = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                conv_relu(self._decoder_width(idx), C * (N - 1 - idx), kernel_size=1, relu_slope=a),
            )
            for idx in range(N - 1)
        )
        self.to_image = Conv2dSame(self._decoder_width(N - 1), IMAGE_CHANNELS, 3)  # linear
        init_tf_slim_(self)

    def _decoder_width(self, idx: int) -> int:
        C, N = self.base_channels, self.depth
        incoming = C if idx == 0 else C * (N - idx)
        return incoming + C * (N - idx)

    def forward(self, condition: torch.Tensor, target_map: torch.Tensor) -> torch.Tensor:
        C, N = self.base_channels, self.depth
        h, w = self.bottleneck_hw
        x = torch.cat([condition, target_map], dim=1)  # (B, 3+18, H, W)
        x = self.stem(x)  # (B, C, H, W)

        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x)  # (B, C·(i+1), H/2^i, W/2^i)
            skips.append(x)
            if i < N - 1:
                x = self.downsample[i](x)  # (B, C·(i+2), H/2^(i+1), W/2^(i+1))

        # x: (B, C·N, 8, w). flatten() reads logical (C, H, W) order whatever the memory format;
        # TF flattened NHWC as (H, W, C), so porting its FC weights would need a permutation.
        z = self.to_z(x.flatten(1))  # (B, z)
        x = self.from_z(z).view(-1, C, h, w)  # (B, C, 8, w)
        if skips[-1].is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # keep the encoder's layout

        for idx, block in enumerate(self.decoder):
            # s = 2^(N−1−idx); width C·(N+1) at idx 0, else 2·C·(N−idx)
            x = torch.cat([x, skips[N - 1 - idx]], dim=1)  # (B, width, H/s, W/s)
            x = block(x)  # (B, width, H/s, W/s)
            if idx < N - 1:
                x = match_skip(self.upsample[idx](x), skips[N - 2 - idx])  # (B, C·(N−1−idx), 2H/s, 2W/s)
        return self.to_image(x)  # (B, 3, H, W)
