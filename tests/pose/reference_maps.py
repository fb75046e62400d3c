"""Per-sample numpy REFERENCE of the PG² pose map and pose mask, written from the definition
(the PG² reference code's ``_getSparseKeypoint`` / ``_getPoseMask``) with plain loops.

It is what ``pg2_pipeline.pose.maps`` is tested against, pixel for pixel, and the baseline of
``bench/bench_pose_maps.py``. Keep it obvious rather than fast.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from skimage.morphology import dilation, erosion, footprint_rectangle

from pg2_pipeline.skeleton import LIMBS, NUM_JOINTS


def _is_visible(y: float, x: float) -> bool:
    # keypoints.visible (a negative coordinate means missing); a non-finite value is missing too.
    return y >= 0 and x >= 0 and math.isfinite(y) and math.isfinite(x)


@functools.cache
def disk_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """Every integer offset (i, j) with sqrt(i² + j²) <= radius."""
    span = range(-radius, radius + 1)
    return tuple((i, j) for i in span for j in span if math.sqrt(i * i + j * j) <= radius)


def draw_disk(canvas: np.ndarray, r: float, c: float, radius: int = 4) -> None:
    """Sets every pixel (int(r) + i, int(c) + j) of the disk that lies in the image."""
    r, c = int(r), int(c)
    height, width = canvas.shape
    for i, j in disk_offsets(radius):
        if 0 <= r + i < height and 0 <= c + j < width:
            canvas[r + i, c + j] = 1


def pose_map(yx: np.ndarray, height: int, width: int, radius: int = 4) -> np.ndarray:
    """``(18, H, W)`` uint8 pose map of one ``(18, 2)`` (y, x) pose."""
    out = np.zeros((NUM_JOINTS, height, width), dtype=np.uint8)
    for k in range(NUM_JOINTS):
        y, x = float(yx[k, 0]), float(yx[k, 1])
        if _is_visible(y, x):
            draw_disk(out[k], y, x, radius)
    return out


def pose_mask(yx: np.ndarray, height: int, width: int, radius: int = 4) -> np.ndarray:
    """``(H, W)`` uint8 pose mask of one ``(18, 2)`` (y, x) pose."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    for a, b in LIMBS:
        r0, c0 = float(yx[a, 0]), float(yx[a, 1])
        r1, c1 = float(yx[b, 0]), float(yx[b, 1])
        if not (_is_visible(r0, c0) and _is_visible(r1, c1)):
            continue
        draw_disk(canvas, r0, c0, radius)
        draw_disk(canvas, r1, c1, radius)
        distance = math.sqrt((r0 - r1) ** 2 + (c0 - c1) ** 2)
        n = int(distance / radius)
        if n > 1:
            for i in range(1, n):
                draw_disk(canvas, r0 + (r1 - r0) * i / n, c0 + (c1 - c0) * i / n, radius)
    square = footprint_rectangle((5, 5))
    return erosion(dilation(canvas, square), square)


def pose_maps_and_masks(yx: np.ndarray, height: int, width: int, radius: int = 4):
    """``(B, 18, H, W)`` maps and ``(B, 1, H, W)`` masks, uint8, one pose at a time."""
    maps = np.stack([pose_map(p, height, width, radius) for p in yx])
    masks = np.stack([pose_mask(p, height, width, radius) for p in yx])[:, None]
    return maps, masks
