"""BlazePose backend: the 33->18 mapping, the canvas transform and real detections on the
sample photos that ship with scikit-image and matplotlib."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pg2_pipeline.pose.blazepose import (
    BLAZEPOSE_SOURCE,
    BlazePoseEstimator,
    BlazePoseOptions,
    CanvasTransform,
    blazepose_to_openpose,
)
from pg2_pipeline.skeleton import JOINT, JOINT_NAMES, MISSING, flip_horizontal, in_bounds, visible


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # (512, 512, 3) RGB


def grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # (600, 512, 3)


@pytest.fixture(scope="module")
def estimator():
    with BlazePoseEstimator(BlazePoseOptions(segmentation=True)) as est:
        yield est


def joint(pose, name):
    return pose.yx[JOINT[name]]


# --- mapping ---------------------------------------------------------------------------------


def test_mapping_table_agrees_with_mediapipe_enum():
    from mediapipe.python.solutions.pose import PoseLandmark

    assert set(BLAZEPOSE_SOURCE) == set(JOINT_NAMES) - {"neck"}
    for name, index in BLAZEPOSE_SOURCE.items():
        side, part = {"r": "RIGHT_", "l": "LEFT_"}.get(name[0], ""), name.split("_")[-1].upper()
        expected = PoseLandmark[f"{side}{part}" if name != "nose" else "NOSE"]
        assert index == expected.value, f"{name} should come from {expected.name} ({expected.value})"


def synthetic_landmarks():
    yx33 = np.stack([10.0 + np.arange(33), 100.0 + np.arange(33)], axis=-1)  # landmark i at (10+i, 100+i)
    return yx33, np.full(33, 0.9)


def test_mapping_puts_each_landmark_at_its_openpose_index():
    yx33, vis = synthetic_landmarks()
    vis[11], vis[12] = 0.8, 0.7  # left, right shoulder
    yx, score = blazepose_to_openpose(yx33, vis, height=200, width=200, visibility_threshold=0.5)
    for name, src in BLAZEPOSE_SOURCE.items():
        np.testing.assert_array_equal(yx[JOINT[name]], [10 + src, 100 + src])
    np.testing.assert_allclose(joint_of(yx, "neck"), [(21 + 22) / 2, (111 + 112) / 2])
    assert score[JOINT["neck"]] == pytest.approx(0.7)  # min of the two shoulders
    assert yx.dtype == score.dtype == np.float32


def joint_of(yx, name):
    return yx[JOINT[name]]


def test_low_visibility_and_out_of_image_landmarks_are_missing():
    yx33, vis = synthetic_landmarks()
    vis[12] = 0.3  # right shoulder hidden -> r_shoulder and neck missing
    yx33[0] = (50, 200.0)  # nose past the right edge (continuous x = 200.5 >= W)
    yx33[2] = (50, -0.4)  # left eye inside pixel 0: kept, clipped to 0
    yx33[5] = (-0.6, 50)  # right eye above the top edge
    yx, score = blazepose_to_openpose(yx33, vis, height=200, width=200, visibility_threshold=0.5)
    for name in ("r_shoulder", "neck", "nose", "r_eye"):
        assert (joint_of(yx, name) == MISSING).all() and score[JOINT[name]] == 0, name
    np.testing.assert_array_equal(joint_of(yx, "l_eye"), [50, 0])
    assert in_bounds(yx, 200, 200).all()


# --- canvas transform ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height, width, min_side, pad",
    [(128, 64, 256, False), (128, 64, 256, True), (100, 37, 256, True), (128, 64, 0, False), (300, 200, 256, True)],
)
def test_canvas_transform_maps_pixels_back_exactly(height, width, min_side, pad):
    """A 3x3 white block is resized (bicubic) onto the canvas; its centroid there, given to
    the transform as MediaPipe would (normalised, pixel-edge convention), lands on the block's
    centre in the original grid."""
    t = CanvasTransform.plan(height, width, upscale_min_side=min_side, pad_to_square=pad)
    assert min(t.scaled_height, t.scaled_width) >= min(min_side, min(height, width)) - 1
    if pad:
        assert t.canvas_height == t.canvas_width
    for cy, cx in [(height // 3, width // 4), (height - 8, width - 6), (7, width // 2)]:
        img = np.zeros((height, width, 3), np.uint8)
        img[cy - 1 : cy + 2, cx - 1 : cx + 2] = 255
        canvas = t.apply(img)[..., 0].astype(np.float64)
        assert canvas.shape == (t.canvas_height, t.canvas_width)
        ys, xs = np.indices(canvas.shape)
        centroid = np.array([(xs * canvas).sum(), (ys * canvas).sum()]) / canvas.sum()  # (x, y) indices
        norm = (centroid + 0.5) / [t.canvas_width, t.canvas_height]
        np.testing.assert_allclose(t.normalized_to_original(norm[None])[0], [cy, cx], atol=0.05)


def test_canvas_corners_are_the_image_edges():
    t = CanvasTransform.plan(128, 64, upscale_min_side=256, pad_to_square=True)
    # the scaled image spans [pad, pad + scaled) on the canvas
    left_top = [[t.pad_left / t.canvas_width, t.pad_top / t.canvas_height]]
    right_bottom = [[(t.pad_left + t.scaled_width) / t.canvas_width, (t.pad_top + t.scaled_height) / t.canvas_height]]
    np.testing.assert_allclose(t.normalized_to_original(left_top), [[-0.5, -0.5]])
    np.testing.assert_allclose(t.normalized_to_original(right_bottom), [[127.5, 63.5]])


def test_mask_goes_back_to_the_original_size():
    t = CanvasTransform.plan(128, 64, upscale_min_side=256, pad_to_square=True)
    canvas_mask = np.zeros((t.canvas_height, t.canvas_width), np.float32)
    canvas_mask[:, : t.pad_left + t.scaled_width // 2] = 1.0  # padding + left half of the image
    mask = t.mask_to_original(canvas_mask)
    assert mask.shape == (128, 64) and mask.dtype == np.float32
    assert (mask[:, :32] == 1).all() and (mask[:, 32:] == 0).all()


# --- options and inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("complexity", [0, 2])
def test_model_complexity_other_than_1_is_refused(complexity):
    with pytest.raises(ValueError, match="not available offline"):
        BlazePoseOptions(model_complexity=complexity)


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.zeros((64, 32, 3), np.float32), TypeError, "dtype uint8.*float32"),
        (np.zeros((64, 32), np.uint8), ValueError, r"shape \(H, W, 3\).*\(64, 32\)"),
        (np.zeros((64, 32, 4), np.uint8), ValueError, "alpha"),
        (np.zeros((0, 32, 3), np.uint8), ValueError, "non-empty"),
        ([[1, 2, 3]], TypeError, "numpy uint8 array.*list"),
    ],
)
def test_bad_input_names_what_was_expected(estimator, image, error, match):
    with pytest.raises(error, match=match):
        estimator.estimate(image)


def test_estimate_after_close_fails():
    est = BlazePoseEstimator()
    est.close()
    est.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        est.estimate(astronaut())


# --- real detections -------------------------------------------------------------------------


def test_astronaut(estimator):
    img = astronaut()
    pose = estimator.estimate(img)
    tol = 0.05 * 512
    assert pose.person_found
    np.testing.assert_allclose(joint(pose, "nose"), [128, 223], atol=tol)
    np.testing.assert_allclose(joint(pose, "l_shoulder"), [257, 306], atol=tol)
    np.testing.assert_allclose(joint(pose, "r_shoulder"), [240, 113], atol=tol)
    np.testing.assert_allclose(joint(pose, "neck"), (joint(pose, "l_shoulder") + joint(pose, "r_shoulder")) / 2)
    # frontal photo: the person's right side is on the image's left
    for part in ("shoulder", "eye", "ear"):
        assert joint(pose, f"r_{part}")[1] < joint(pose, f"l_{part}")[1], part
    assert in_bounds(pose.yx, 512, 512).all()
    assert ((pose.score > 0) == visible(pose.yx)).all()
    seg = pose.segmentation
    assert seg.shape == (512, 512) and seg.dtype == np.float32
    assert seg[250, 200] > 0.5 > seg[20, 20]  # the astronaut's chest vs the top-left corner


def test_grace_hopper(estimator):
    img = grace_hopper()
    pose = estimator.estimate(img)
    assert pose.person_found
    vis = visible(pose.yx)
    assert vis[JOINT["nose"]] and (vis[JOINT["r_eye"]] or vis[JOINT["l_eye"]])
    assert vis[JOINT["r_shoulder"]] and vis[JOINT["l_shoulder"]]
    assert in_bounds(pose.yx, *img.shape[:2]).all()
    assert joint(pose, "r_shoulder")[1] < joint(pose, "nose")[1] < joint(pose, "l_shoulder")[1]
    assert joint(pose, "nose")[0] < joint(pose, "r_shoulder")[0]


def test_flipped_photo_gives_the_flipped_pose(estimator):
    """A mirror image swaps the person's sides: the table's left/right assignment must agree."""
    img = astronaut()
    pose = estimator.estimate(img)
    mirrored = estimator.estimate(np.ascontiguousarray(img[:, ::-1]))
    expected = flip_horizontal(pose.yx, 512)
    both = visible(expected) & visible(mirrored.yx)
    assert both[[JOINT[n] for n in ("nose", "r_shoulder", "l_shoulder", "r_eye", "l_eye", "r_ear", "l_ear")]].all()
    np.testing.assert_allclose(mirrored.yx[both], expected[both], atol=0.03 * 512)


@pytest.mark.parametrize("image", ["blank", "noise"])
def test_no_person_gives_an_all_missing_pose(estimator, image):
    rng = np.random.default_rng(0)
    img = np.zeros((256, 128, 3), np.uint8) if image == "blank" else rng.integers(0, 256, (256, 128, 3), dtype=np.uint8)
    pose = estimator.estimate(img)
    assert not pose.person_found
    assert (pose.yx == MISSING).all() and (pose.score == 0).all()
    assert pose.segmentation.shape == (256, 128) and (pose.segmentation == 0).all()


@pytest.mark.parametrize(
    "options",
    [BlazePoseOptions(), BlazePoseOptions(pad_to_square=True), BlazePoseOptions(upscale_min_side=0)],
    ids=["upscale", "upscale+pad", "no-upscale"],
)
def test_small_crop_agrees_with_full_size(options):
    """A person crop shrunk to Market's 128x64: the keypoints, mapped back to the small grid,
    agree with the full-resolution crop's (scaled) within 5 % of the crop height."""
    crop = np.ascontiguousarray(astronaut()[:, 96:352])  # (512, 256): a 2:1 person crop
    small = cv2.resize(crop, (64, 128), interpolation=cv2.INTER_AREA)
    with BlazePoseEstimator(options) as est:
        full = est.estimate(crop)
        pose = est.estimate(small)
    assert full.person_found and pose.person_found
    scale = np.array([128 / 512, 64 / 256])
    expected = (full.yx + 0.5) * scale - 0.5  # pixel-index convention on both grids
    names = ["nose", "r_shoulder", "l_shoulder", "r_eye", "l_eye"]
    idx = [JOINT[n] for n in names]
    assert visible(pose.yx)[idx].all() and visible(full.yx)[idx].all()
    np.testing.assert_allclose(pose.yx[idx], expected[idx], atol=0.05 * 128)
    assert in_bounds(pose.yx, 128, 64).all()
