"""PCKh of generated images, as the pose-transfer literature computes it.

A pose estimator (OpenPose in the papers; any backend of :mod:`pg2_pipeline.pose`) is run on
the generated images; its keypoints are compared with the *target* keypoints (the standard
annotation files). Keypoints are the project's representation: (N, 18, 2) (y, x) pixels,
OpenPose-18 order, a negative coordinate = missing.

Definition (PATN, Zhu et al. 2019, ``tool/calPCKH_market.py`` and ``tool/calPCKH_fashion.py``,
identical; reused by later works on the same annotations):

* **head size**: from the *target* keypoints of the head — nose, neck, both eyes, both ears
  (indices 0, 1, 14, 15, 16, 17). With at least 2 of them present, the head box is their
  bounding box: width = x_max − x_min, height = y_max − y_min. With fewer, the image is
  skipped: none of its joints is counted.
* **correct joint**: present in both prediction and target and, per axis, strictly inside half
  the head box: ``|x_p − x_t| < 0.5·width`` and ``|y_p − y_t| < 0.5·height`` (a box test, not
  a Euclidean distance; a head box of zero width or height makes every joint wrong).
* **counted joints**: every joint present in the target (missing in the target: not counted;
  missing in the prediction but present in the target: counted, wrong).
* PCKh = Σ correct / Σ counted over all images (joints pooled, not a mean of per-image ratios).

:func:`pckh` returns the per-image counts; :func:`pckh_score` pools them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pg2_pipeline.skeleton import JOINT, NUM_JOINTS

HEAD_JOINTS = (JOINT["nose"], JOINT["neck"], JOINT["r_eye"], JOINT["l_eye"], JOINT["r_ear"], JOINT["l_ear"])
ALPHA = 0.5
MIN_HEAD_JOINTS = 2


@dataclass(frozen=True)
class PCKhCounts:
    correct: Tensor  # (N,) int64: joints within the threshold
    counted: Tensor  # (N,) int64: joints present in the target (0 for a skipped image)
    has_head: Tensor  # (N,) bool: the target has a head box (else the image is skipped)


def _as_yx(yx, what: str) -> Tensor:
    t = torch.as_tensor(np.asarray(yx) if not isinstance(yx, Tensor) else yx)
    if t.dim() != 3 or tuple(t.shape[1:]) != (NUM_JOINTS, 2):
        raise ValueError(f"{what} keypoints must be (N, {NUM_JOINTS}, 2) (y, x), got {tuple(t.shape)}")
    return t.to(torch.float64)


def head_box(target_yx) -> tuple[Tensor, Tensor, Tensor]:
    """(height, width, has_head) of the targets' head boxes, (N,) each (0 where undefined)."""
    t = _as_yx(target_yx, "target")
    head = t[:, list(HEAD_JOINTS)]  # (N, 6, 2)
    present = (head >= 0).all(dim=-1)  # (N, 6)
    has_head = present.sum(dim=1) >= MIN_HEAD_JOINTS
    inf = torch.tensor(float("inf"), dtype=t.dtype, device=t.device)
    lo = torch.where(present.unsqueeze(-1), head, inf).amin(dim=1)  # (N, 2)
    hi = torch.where(present.unsqueeze(-1), head, -inf).amax(dim=1)
    size = torch.where(has_head.unsqueeze(-1), hi - lo, torch.zeros_like(lo))
    return size[:, 0], size[:, 1], has_head


def pckh(pred_yx, target_yx, alpha: float = ALPHA) -> PCKhCounts:
    """Per-image PCKh counts of predicted vs target keypoints (N, 18, 2) (y, x); see the
    module doc. Accepts torch tensors or numpy arrays."""
    p = _as_yx(pred_yx, "predicted")
    t = _as_yx(target_yx, "target").to(p.device)
    if p.shape != t.shape:
        raise ValueError(f"predicted {tuple(p.shape)} and target {tuple(t.shape)} keypoints differ in shape")
    h, w, has_head = head_box(t)
    in_target = (t >= 0).all(dim=-1)  # (N, 18)
    in_pred = (p >= 0).all(dim=-1)
    d = (p - t).abs()
    close = (d[..., 0] < alpha * h.unsqueeze(1)) & (d[..., 1] < alpha * w.unsqueeze(1))
    correct = (close & in_target & in_pred & has_head.unsqueeze(1)).sum(dim=1)
    counted = (in_target & has_head.unsqueeze(1)).sum(dim=1)
    return PCKhCounts(correct, counted, has_head)


def pckh_score(counts: PCKhCounts) -> float:
    """Σ correct / Σ counted (the literature's pooled PCKh)."""
    total = int(counts.counted.sum())
    if total == 0:
        raise ValueError("PCKh: no joint counted (no target has a head box and a visible joint)")
    return int(counts.correct.sum()) / total
