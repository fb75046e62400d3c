"""Pictures of poses: skeletons on images, and pose maps / masks as colour images."""

from __future__ import annotations

import cv2
import numpy as np

from pg2_pipeline.skeleton import NUM_JOINTS, visible

# The 17 OpenPose-18 bones (0-based) drawn for people; the pose mask uses its own 23 limbs.
BONES = (
    (1, 2),
    (2, 3),
    (3, 4),
    (1, 5),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)


def joint_colours(n: int = NUM_JOINTS) -> np.ndarray:
    """One saturated colour per joint (RGB uint8), hue evenly spread."""
    hsv = np.stack([np.linspace(0, 170, n, endpoint=False), np.full(n, 255), np.full(n, 255)], -1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]


def draw_skeleton(rgb: np.ndarray, yx: np.ndarray, scale: int = 1, thickness: int = 1) -> np.ndarray:
    """A copy of ``rgb`` (upscaled ``scale``×) with bones and joints of the pose drawn on it."""
    out = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else rgb.copy()
    vis = visible(yx)
    colours = joint_colours()
    pts = [(int(round((x + 0.5) * scale - 0.5)), int(round((y + 0.5) * scale - 0.5))) for y, x in yx]
    for a, b in BONES:
        if vis[a] and vis[b]:
            cv2.line(out, pts[a], pts[b], colours[b].tolist(), thickness, cv2.LINE_AA)
    for k in np.flatnonzero(vis):
        cv2.circle(out, pts[k], max(1, thickness + 1), colours[k].tolist(), -1, cv2.LINE_AA)
    return out


def pose_map_rgb(maps: np.ndarray) -> np.ndarray:
    """(18, H, W) binary pose map → RGB: each joint's disk in its colour on black."""
    maps = np.asarray(maps, dtype=bool)
    colours = joint_colours(maps.shape[0]).astype(np.float32)
    rgb = np.tensordot(maps.astype(np.float32).transpose(1, 2, 0), colours, axes=1)
    count = maps.sum(0)[..., None]
    return np.where(count > 0, rgb / np.maximum(count, 1), 0).astype(np.uint8)


def mask_rgb(mask: np.ndarray) -> np.ndarray:
    """(H, W) {0,1} pose mask → white on black RGB."""
    m = (np.asarray(mask).astype(bool) * 255).astype(np.uint8)
    return np.repeat(m[..., None], 3, axis=-1)
