"""PCKh with PATN's head-box definition (tool/calPCKH_market.py) on known inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pg2_pipeline.evaluate.pckh import HEAD_JOINTS, head_box, pckh, pckh_score
from pg2_pipeline.skeleton import JOINT


def pose(**joints: tuple[float, float]) -> np.ndarray:
    yx = np.full((18, 2), -1.0, np.float32)
    for name, (y, x) in joints.items():
        yx[JOINT[name]] = (y, x)
    return yx


# head box: x from 28 to 38 (width 10), y from 10 to 26 (height 16) -> thresholds 5 and 8
TARGET = pose(
    nose=(14, 33),
    neck=(26, 32),
    r_eye=(12, 30),
    l_eye=(12, 36),
    r_ear=(10, 28),
    l_ear=(13, 38),
    r_shoulder=(30, 22),
    l_hip=(66, 38),
    r_knee=(90, 26),
)


def test_head_joints_are_patn_parts_sel():
    assert HEAD_JOINTS == (0, 1, 14, 15, 16, 17)  # PATN's PARTS_SEL


def test_head_box_is_the_bounding_box_of_present_head_joints():
    h, w, ok = head_box(TARGET[None])
    assert (float(h[0]), float(w[0]), bool(ok[0])) == (16.0, 10.0, True)
    one_head_joint = pose(nose=(14, 33), r_shoulder=(30, 22))
    h, w, ok = head_box(one_head_joint[None])
    assert not bool(ok[0]) and float(h[0]) == float(w[0]) == 0.0


def test_thresholds_are_strict_per_axis_boxes():
    pred = TARGET.copy()
    pred[JOINT["r_shoulder"]] += (7.9, 4.9)  # inside both half-box sides: correct
    pred[JOINT["l_hip"]] += (0.0, 5.0)  # exactly half the width: wrong (strict <)
    pred[JOINT["r_knee"]] += (8.0, 0.0)  # exactly half the height: wrong
    pred[JOINT["nose"]] += (4.0, 4.0)  # Euclidean 5.66 > 5, but inside the box: correct
    c = pckh(pred[None], TARGET[None])
    assert int(c.counted[0]) == 9 and int(c.correct[0]) == 7


def test_missing_joints():
    pred = TARGET.copy()
    pred[JOINT["r_knee"]] = -1  # present in the target, missing in the prediction: counted, wrong
    pred[JOINT["l_wrist"]] = (50, 50)  # missing in the target: not counted
    c = pckh(torch.from_numpy(pred[None]), torch.from_numpy(TARGET[None]))
    assert (int(c.correct[0]), int(c.counted[0])) == (8, 9)


def test_images_without_a_head_box_are_skipped_and_zero_width_boxes_count_wrong():
    no_head = pose(nose=(14, 33), r_shoulder=(30, 22), l_hip=(66, 38))
    flat = pose(nose=(14, 33), neck=(26, 33), r_hip=(60, 30))  # head box of width 0
    targets = np.stack([TARGET, no_head, flat])
    c = pckh(targets, targets)  # a perfect prediction
    assert c.correct.tolist() == [9, 0, 0] and c.counted.tolist() == [9, 0, 3]
    assert c.has_head.tolist() == [True, False, True]
    assert pckh_score(c) == pytest.approx(9 / 12)  # pooled over joints, not per-image means


def patn_reference(pred: np.ndarray, target: np.ndarray, alpha: float = 0.5) -> tuple[int, int]:
    """A per-image transcription of calPCKH_market.py's loop (x = column 1, y = column 0)."""
    n_correct = n_all = 0
    for p, t in zip(pred, target):
        head = [(t[j, 1], t[j, 0]) for j in HEAD_JOINTS if t[j, 1] != -1 and t[j, 0] != -1]
        if len(head) < 2:
            continue
        xs, ys = [x for x, _ in head], [y for _, y in head]
        hz = (max(xs) - min(xs), max(ys) - min(ys))
        n_all += int(sum(t[:, 0] != -1))
        for (py, px), (ty, tx) in zip(p, t):
            if -1 in (px, py, tx, ty):
                continue
            n_correct += abs(px - tx) < hz[0] * alpha and abs(py - ty) < hz[1] * alpha
    return n_correct, n_all


def test_matches_patn_loop_on_random_poses():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 64, (200, 18, 2)).astype(np.float32)
    target[rng.random((200, 18)) < 0.35] = -1
    # coordinates stay in the image: PATN tests == -1, the project < 0 (the same on real poses)
    pred = np.clip(target + rng.integers(-12, 13, target.shape), 0, 63)
    pred[rng.random((200, 18)) < 0.15] = -1
    pred[target[..., 0] == -1] = np.where(rng.random(((target[..., 0] == -1).sum(), 1)) < 0.5, -1, 5)
    c = pckh(pred, target)
    assert (int(c.correct.sum()), int(c.counted.sum())) == patn_reference(pred, target)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(N, 18, 2\)"):
        pckh(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)))
    with pytest.raises(ValueError, match="no joint counted"):
        pckh_score(pckh(np.full((1, 18, 2), -1.0), np.full((1, 18, 2), -1.0)))
