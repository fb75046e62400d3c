"""The published per-pair SSIM calls of each protocol (the specification the torch metrics are
checked against, and the benchmark's baseline)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def skimage_ssim(generated: np.ndarray, target: np.ndarray, protocol: str) -> float:
    """The published calls, per pair, on (H, W, 3) uint8 arrays (the specification)."""
    g, t = generated.transpose(1, 2, 0), target.transpose(1, 2, 0)
    if protocol == "pg2":  # PG²: skimage defaults on uint8
        return structural_similarity(t, g, channel_axis=-1)
    if protocol == "gaussian":  # Deformable GAN / PATN
        return structural_similarity(
            t,
            g,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=float(g.max()) - float(g.min()),
        )
    if protocol == "win51":  # GFLA: float32 / 255, skimage of its time computed in float64
        g01 = (g.astype(np.float32) / 255.0).astype(np.float64)
        t01 = (t.astype(np.float32) / 255.0).astype(np.float64)
        return structural_similarity(t01, g01, channel_axis=-1, data_range=1, win_size=51)
    raise AssertionError(protocol)
