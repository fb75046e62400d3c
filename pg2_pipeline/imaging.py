"""Image tensors between the forms the project uses, in one place.

* uint8 RGB, ``(B, 3, H, W)``: what the metrics take and what files hold;
* float in [-1, 1], ``(B, 3, H, W)``: what the networks see (PG²'s ``x / 127.5 - 1``);
* numpy uint8 ``(B, H, W, 3)``: what pictures, OpenCV and the MLflow model exchange.
"""

from __future__ import annotations

import numpy as np
import torch

Tensor = torch.Tensor


def from_uint8(images: Tensor) -> Tensor:
    """uint8 (or float holding [0, 255]) images → float32 in [-1, 1], same shape and device."""
    return images.float() / 127.5 - 1.0


def to_uint8(images: Tensor) -> Tensor:
    """Network images in [-1, 1] (any float dtype) → uint8, rounded, same shape and device."""
    return images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def to_numpy_hwc(images: Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` uint8, or network images in [-1, 1], → numpy uint8 ``(B, H, W, 3)``."""
    if images.dtype != torch.uint8:
        images = to_uint8(images.detach())
    return images.permute(0, 2, 3, 1).cpu().numpy()


def from_numpy_hwc(images: np.ndarray, device: str | torch.device = "cpu") -> Tensor:
    """numpy uint8 ``(B, H, W, 3)`` → uint8 ``(B, 3, H, W)`` on ``device`` (a view: no copy on
    the CPU)."""
    return torch.from_numpy(np.asarray(images)).to(device, non_blocking=True).permute(0, 3, 1, 2)
