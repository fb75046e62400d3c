"""The one pose representation of the project: OpenPose-18 keypoints (COCO order).

A pose is stored as ``(y, x)`` pixel coordinates plus a per-joint score. A joint is *missing*
when its coordinates are ``MISSING`` (-1), as in the standard annotation files; its score is 0.
Arrays:

* ``yx``: float32 ``(..., 18, 2)`` — row then column, -1 for missing joints
* ``score``: float32 ``(..., 18)`` — confidence in [0, 1]; 0 for missing joints

Every other module (twin renderer, pair mining, pose maps and masks, training, evaluation)
goes through this module for joint names, limbs, visibility and flips.
"""

from __future__ import annotations

from typing import Final

import numpy as np

NUM_JOINTS: Final = 18
MISSING: Final = -1.0

JOINT_NAMES: Final = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip
JOINT = {name: i for i, name in enumerate(JOINT_NAMES)}

# Eyes and ears follow OpenPose's COCO order (14 right eye, 15 left eye, 16 right ear, 17 left
# ear). Deformable GAN's label list (copied by many reference notes) calls 14/15 "Leye, Reye" and
# 16/17 "Lear, Rear", but the standard annotation files say otherwise: in the 4,656 frontal Market
# train poses (right shoulder left of the left shoulder in the image) joint 14 lies on the right
# shoulder's side in 99.96 % of cases and joint 16 in 100 % (tests/pose/test_keypoints.py). The
# side matters for BlazePose mapping and rendering; flips swap 14<->15 and 16<->17 either way.

# Index permutation of a horizontal flip: every right joint trades places with its left twin.
FLIP_PERMUTATION: Final = np.array(
    [JOINT[n.replace("r_", "\0").replace("l_", "r_").replace("\0", "l_")] for n in JOINT_NAMES]
)

# The 23 limbs of the PG² pose mask, 1-based OpenPose-18 indices as published
# with the PG² reference code.
LIMBS_1BASED: Final = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
    (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (2, 17), (2, 18),
    (9, 12), (12, 6), (9, 3), (17, 18),
)  # fmt: skip
LIMBS: Final = np.array(LIMBS_1BASED, dtype=np.int64) - 1  # (23, 2), 0-based

TORSO: Final = (JOINT["r_shoulder"], JOINT["l_shoulder"], JOINT["r_hip"], JOINT["l_hip"])


def visible(yx: np.ndarray) -> np.ndarray:
    """Boolean ``(..., 18)``: the joint has coordinates (is not ``MISSING``)."""
    yx = np.asarray(yx)
    return (yx[..., 0] >= 0) & (yx[..., 1] >= 0)


def num_visible(yx: np.ndarray) -> np.ndarray:
    return visible(yx).sum(axis=-1)


def has_torso(yx: np.ndarray) -> np.ndarray:
    """Both shoulders and both hips visible (the Deformable GAN filter)."""
    return visible(yx)[..., list(TORSO)].all(axis=-1)


def flip_horizontal(yx: np.ndarray, width: int, score: np.ndarray | None = None):
    """The pose of the mirrored image: x -> width - 1 - x and every left/right pair swapped.

    Returns ``yx`` (and ``score`` when given) of the flipped pose; missing joints stay missing.
    """
    yx = np.asarray(yx, dtype=np.float32)
    out = yx[..., FLIP_PERMUTATION, :].copy()
    vis = visible(out)
    out[..., 1] = np.where(vis, (width - 1) - out[..., 1], MISSING)
    if score is None:
        return out
    return out, np.asarray(score)[..., FLIP_PERMUTATION].copy()


def default_scores(yx: np.ndarray) -> np.ndarray:
    """Scores for annotation keypoints: 1 where visible, 0 where missing."""
    return visible(yx).astype(np.float32)


def from_annotation_lists(ys: list[int], xs: list[int]) -> np.ndarray:
    """``(18, 2)`` float32 from the standard files' y and x lists (-1 = missing). A joint is
    missing when either coordinate is -1."""
    yx = np.stack([np.asarray(ys, dtype=np.float32), np.asarray(xs, dtype=np.float32)], axis=-1)
    yx[(yx < 0).any(axis=-1)] = MISSING
    return yx


def in_bounds(yx: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean ``(..., 18)``: visible and inside the image (missing joints count as in bounds)."""
    yx = np.asarray(yx)
    inside = (yx[..., 0] <= height - 1) & (yx[..., 1] <= width - 1)
    return ~visible(yx) | inside
