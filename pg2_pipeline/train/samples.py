"""Sample grids: one row per pair, columns condition | target pose | G1 | (G2) | target."""

from __future__ import annotations

import numpy as np
import torch

from pg2_pipeline import viz
from pg2_pipeline.pose.draw import pose_map_rgb


def to_uint8_nchw(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] → (B, 3, H, W) uint8 on the same device (what metrics take)."""
    return images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] → (B, H, W, 3) uint8."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def sample_grid(condition: torch.Tensor, target_map: torch.Tensor, target: torch.Tensor, outputs: dict[str, torch.Tensor], scale: int = 2) -> np.ndarray:
    """Rows of condition | target pose | each output (in order) | target, labelled on the first row."""
    columns = {"condition": to_uint8(condition), "target pose": np.stack([pose_map_rgb(m > 0) for m in target_map.float().cpu().numpy()])}
    columns.update({name: to_uint8(t) for name, t in outputs.items()})
    columns["target"] = to_uint8(target)
    tiles = []
    for row in range(condition.shape[0]):
        for name, images in columns.items():
            tile = viz.upscale(images[row], scale)
            tiles.append(viz.label(tile, name) if row == 0 else tile)
    return viz.grid(tiles, cols=len(columns))
