"""Sample grids: one row per pair, columns condition | target pose | each output | target."""

from __future__ import annotations

import numpy as np
import torch

from pg2_pipeline import viz
from pg2_pipeline.imaging import to_numpy_hwc
from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.pose.draw import pose_map_rgb


def sample_grid(batch: Batch, outputs: dict[str, torch.Tensor], scale: int = 2) -> np.ndarray:
    """Rows of condition | target pose | each output (in order) | target, labelled on the first row."""
    poses = np.stack([pose_map_rgb(m > 0) for m in batch.target_map.float().cpu().numpy()])
    columns = {"condition": to_numpy_hwc(batch.condition), "target pose": poses}
    columns.update({name: to_numpy_hwc(t) for name, t in outputs.items()})
    columns["target"] = to_numpy_hwc(batch.target)
    tiles = []
    for row in range(len(batch)):
        for name, images in columns.items():
            tile = viz.upscale(images[row], scale)
            tiles.append(viz.label(tile, name) if row == 0 else tile)
    return viz.grid(tiles, cols=len(columns))
