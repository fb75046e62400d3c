"""The batched pose maps and masks equal the per-sample numpy reference pixel for pixel."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pg2_pipeline.data.annotations import keypoints_array, standard_file
from pg2_pipeline.pose.maps import network_maps_and_masks, pose_maps, pose_maps_and_masks, pose_masks, to_network
from pg2_pipeline.skeleton import FLIP_PERMUTATION, LIMBS, NUM_JOINTS, flip_horizontal

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `tests` is a plain folder; the reference is imported by path
    sys.path.insert(0, _ROOT)
from tests.pose import reference_maps as ref  # noqa: E402

MARKET = (128, 64)
FASHION = (256, 256)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def batched(yx: np.ndarray, height: int, width: int, sync: bool | None = None):
    maps, masks = pose_maps_and_masks(torch.from_numpy(yx), height, width, sync=sync)
    return maps.numpy(), masks.numpy()


def reference(yx: np.ndarray, height: int, width: int):
    maps, masks = ref.pose_maps_and_masks(yx, height, width)
    return maps.astype(bool), masks.astype(bool)


def assert_same(yx: np.ndarray, height: int, width: int, sync: bool | None = None, want=None) -> None:
    got_maps, got_masks = batched(yx, height, width, sync)
    want_maps, want_masks = reference(yx, height, width) if want is None else want
    for what, got, expected in (("map", got_maps, want_maps), ("mask", got_masks, want_masks)):
        bad = np.flatnonzero((got != expected).reshape(len(yx), -1).any(axis=1))
        assert bad.size == 0, (
            f"{what}s differ from the reference for {bad.size} of {len(yx)} poses, first {bad[:5].tolist()}; "
            f"pose {bad[0]}: {yx[bad[0]].tolist()}"
        )


def random_poses(rng: np.random.Generator, n: int, height: int, width: int, missing: float, spread: float = 1.0):
    """Fractional (y, x) over ``spread`` times the image, a ``missing`` share of joints at -1."""
    yx = rng.uniform(0, 1, (n, NUM_JOINTS, 2)) * np.array([height, width]) * spread
    yx[rng.random((n, NUM_JOINTS)) < missing] = -1.0
    return yx.astype(np.float32)


@pytest.fixture(scope="module")
def market() -> np.ndarray:
    train = keypoints_array(standard_file("market_annotation_train"))[::43][:300]
    test = keypoints_array(standard_file("market_annotation_test"))[::197][:100]  # some junk: all -1
    return np.concatenate([train, test])


@pytest.fixture(scope="module")
def fashion() -> np.ndarray:
    return keypoints_array(standard_file("fashion_annotation_test"))[::40][:100]


@pytest.fixture(scope="module")
def market_reference(market):
    return reference(market, *MARKET)


@pytest.mark.parametrize("sync", [True, False])
def test_market_annotations_match_reference(market, market_reference, sync):
    assert_same(market, *MARKET, sync=sync, want=market_reference)


def test_fashion_annotations_match_reference(fashion):
    assert_same(fashion, *FASHION)


def test_flipped_annotations_match_reference(market):
    assert_same(flip_horizontal(market[:150], MARKET[1]), *MARKET)


@pytest.mark.parametrize("size", [MARKET, (37, 29), (20, 100), (70, 130)])
@pytest.mark.parametrize("sync", [True, False])
def test_random_poses_with_missing_joints(size, sync):
    rng = np.random.default_rng(sum(size) + sync)
    assert_same(random_poses(rng, 60, *size, missing=0.3), *size, sync=sync)


@pytest.mark.parametrize("sync", [True, False])
def test_joints_at_and_past_the_borders(sync):
    """Edges, just past them (disks partly inside), far past them (limbs that enter the image
    from far away: only a window of their points is generated), fractional coordinates."""
    height, width = MARKET
    rng = np.random.default_rng(7)
    ys = [0, 0.5, 3, 4, height - 1, height - 0.5, height, height + 3, height + 3.9, height + 4, height + 9]
    xs = [0, 0.25, 2, width - 1, width - 0.75, width, width + 2, width + 4, width + 5]
    near = np.stack([rng.choice(ys, (40, NUM_JOINTS)), rng.choice(xs, (40, NUM_JOINTS))], axis=-1)
    far = random_poses(rng, 20, height, width, missing=0.1, spread=8.0)  # up to 1024 px
    mixed = random_poses(rng, 20, height, width, missing=0.1)
    mixed[:, ::3] = far[:, ::3]  # limbs from far outside to inside, in both directions
    yx = np.concatenate([near, far, mixed]).astype(np.float32)
    assert_same(yx, height, width, sync=sync)
    assert_same(yx[:, :, ::-1].copy(), width, height, sync=sync)  # a wide image too


def test_all_missing_gives_empty_maps_and_masks():
    yx = np.full((3, NUM_JOINTS, 2), -1.0, dtype=np.float32)
    maps, masks = batched(yx, *MARKET)
    assert maps.shape == (3, NUM_JOINTS, *MARKET) and not maps.any()
    assert masks.shape == (3, 1, *MARKET) and not masks.any()


def test_short_limbs_match_reference():
    """n = int(dist / 4) <= 1: only the two end disks (and ends that coincide)."""
    rng = np.random.default_rng(3)
    centre = np.array([60.0, 30.0])
    offsets = rng.uniform(-1, 1, (50, NUM_JOINTS, 2)) * rng.choice([0.0, 2.0, 3.9, 5.6], (50, NUM_JOINTS, 1))
    yx = (centre + offsets).astype(np.float32)
    assert_same(yx, *MARKET)
    single = np.full((1, NUM_JOINTS, 2), -1.0, dtype=np.float32)
    a, b = LIMBS[0]
    single[0, a], single[0, b] = (40, 20), (46, 25)  # dist 7.8: n = 1
    assert_same(single, *MARKET)


def test_non_finite_coordinates_count_as_missing():
    yx = random_poses(np.random.default_rng(5), 4, *MARKET, missing=0.0)
    yx[0, 3] = (np.nan, 10.0)
    yx[1, 1] = (np.inf, 10.0)
    yx[2, 5] = (20.0, -np.inf)
    clean = yx.copy()
    clean[0, 3] = clean[1, 1] = clean[2, 5] = -1.0
    want = batched(clean, *MARKET)
    for dtype in (torch.float32, torch.float64):
        got = pose_maps_and_masks(torch.from_numpy(yx).to(dtype), *MARKET)
        assert all((g.numpy() == w).all() for g, w in zip(got, want))


def test_flip_swaps_and_mirrors_the_map_channels(market):
    """flip_horizontal: x -> W-1-x and right/left swapped. Integer keypoints stay exact."""
    width = MARKET[1]
    poses = market[:150]
    maps = pose_maps(torch.from_numpy(poses), *MARKET).numpy()
    flipped = pose_maps(torch.from_numpy(flip_horizontal(poses, width)), *MARKET).numpy()
    assert maps.any() and (flipped == maps[:, FLIP_PERMUTATION, :, ::-1]).all()


def test_flip_mirrors_the_mask_when_limb_points_are_whole_pixels():
    """The mask mirrors exactly when every limb point has a whole-pixel x (here: vertical
    limbs). Real limbs have fractional points, and int() truncation is not symmetric under
    x -> W-1-x: there the flipped mask moves by a column (test_flipped_annotations_match_reference
    checks those against the reference instead)."""
    height, width = MARKET
    rng = np.random.default_rng(11)
    yx = rng.uniform(0, height - 1, (30, NUM_JOINTS, 2)).astype(np.float32).round()
    yx[..., 1] = rng.integers(0, width, (30, 1))  # one column per pose: vertical limbs
    yx[rng.random((30, NUM_JOINTS)) < 0.2] = -1.0
    _, masks = batched(yx, height, width)
    _, flipped = batched(flip_horizontal(yx, width), height, width)
    assert masks.any() and (flipped == masks[..., ::-1]).all()


def test_dtype_shape_and_values():
    yx = torch.from_numpy(random_poses(np.random.default_rng(1), 5, *FASHION, missing=0.2))
    maps, masks = pose_maps_and_masks(yx, *FASHION)
    assert maps.dtype == masks.dtype == torch.bool
    assert maps.shape == (5, NUM_JOINTS, *FASHION) and masks.shape == (5, 1, *FASHION)
    assert maps.is_contiguous() and masks.is_contiguous()
    assert torch.equal(maps, pose_maps(yx, *FASHION)) and torch.equal(masks, pose_masks(yx, *FASHION))
    # A joint inside the image draws exactly the 49 pixels of the radius-4 disk.
    visible_inside = (yx >= 4).all(-1) & (yx[..., 0] < FASHION[0] - 4) & (yx[..., 1] < FASHION[1] - 4)
    counts = maps.sum(dim=(2, 3))
    assert (counts[visible_inside] == 49).all() and (counts[(yx < 0).any(-1)] == 0).all()
    assert pose_maps(yx[:0], *FASHION).shape == (0, NUM_JOINTS, *FASHION)
    assert pose_masks(yx[:0], *FASHION).shape == (0, 1, *FASHION)


def test_outputs_are_ordinary_tensors():
    """The work runs in inference mode; what comes out must still work with autograd, and calls
    made inside the caller's own inference mode work too."""
    yx = torch.from_numpy(random_poses(np.random.default_rng(8), 4, *MARKET, missing=0.2))
    maps, masks = pose_maps_and_masks(yx, *MARKET)
    assert not maps.is_inference() and not masks.is_inference()
    weight = torch.ones(NUM_JOINTS, 1, 1, requires_grad=True)
    (to_network(maps) * weight * masks).sum().backward()
    assert weight.grad is not None
    with torch.inference_mode():
        inside = pose_maps_and_masks(yx, *MARKET)
    assert torch.equal(inside[0], maps) and torch.equal(inside[1], masks)


def test_batch_entries_are_independent():
    yx = torch.from_numpy(random_poses(np.random.default_rng(2), 8, *MARKET, missing=0.3))
    maps, masks = pose_maps_and_masks(yx, *MARKET)
    for i in (0, 5):
        one_map, one_mask = pose_maps_and_masks(yx[i : i + 1], *MARKET)
        assert torch.equal(one_map[0], maps[i]) and torch.equal(one_mask[0], masks[i])


def test_other_radius_matches_reference():
    yx = random_poses(np.random.default_rng(4), 20, *MARKET, missing=0.2)
    for radius in (1, 2, 6):
        maps, masks = pose_maps_and_masks(torch.from_numpy(yx), *MARKET, radius=radius)
        want_maps = np.stack([ref.pose_map(p, *MARKET, radius) for p in yx]).astype(bool)
        want_masks = np.stack([ref.pose_mask(p, *MARKET, radius) for p in yx]).astype(bool)
        assert (maps.numpy() == want_maps).all() and (masks.numpy()[:, 0] == want_masks).all()


def test_to_network_range():
    maps = pose_maps(torch.from_numpy(random_poses(np.random.default_rng(6), 3, *MARKET, missing=0.2)), *MARKET)
    x = to_network(maps)
    assert x.dtype == torch.float32 and x.shape == maps.shape
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(x, 2 * maps.float() - 1)
    assert to_network(maps, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert torch.equal(to_network(maps.to(torch.uint8)), x)
    as_float = maps.float()
    assert torch.equal(to_network(as_float), x) and torch.equal(as_float, maps.float())  # input kept


@pytest.mark.parametrize("size", [MARKET, FASHION])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_network_form_equals_converting_the_bool_maps(size, dtype):
    """The loader's direct float drawing is the bool maps and masks, converted."""
    yx = torch.from_numpy(random_poses(np.random.default_rng(7), 12, *size, missing=0.3, spread=1.2))
    maps, masks = network_maps_and_masks(yx, *size, dtype=dtype)
    want_maps, want_masks = pose_maps_and_masks(yx, *size)
    assert maps.dtype == masks.dtype == dtype
    assert torch.equal(maps, to_network(want_maps, dtype)) and torch.equal(masks, want_masks.to(dtype))
    empty_maps, empty_masks = network_maps_and_masks(yx[:0], *size)
    assert empty_maps.shape == (0, NUM_JOINTS, *size) and empty_masks.shape == (0, 1, *size)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(B, 18, 2\)"):
        pose_maps(torch.zeros(18, 2), *MARKET)
    with pytest.raises(TypeError, match="floating-point"):
        pose_masks(torch.zeros(1, 18, 2, dtype=torch.long), *MARKET)
    with pytest.raises(ValueError, match="radius"):
        pose_maps(torch.zeros(1, 18, 2), *MARKET, radius=0)


@pytest.mark.parametrize("device", DEVICES)
def test_device(device, market):
    """Same result on every device (CUDA takes the sync-free path), output on the input's device."""
    yx = torch.from_numpy(market[:64])
    maps, masks = pose_maps_and_masks(yx.to(device), *MARKET)
    assert maps.device.type == masks.device.type == device
    want_maps, want_masks = pose_maps_and_masks(yx, *MARKET)
    assert torch.equal(maps.cpu(), want_maps) and torch.equal(masks.cpu(), want_masks)


def test_fashion_annotations_cropped_to_256x176_match_reference(fashion):
    """DeepFashion at 256×176 (PATN's window, x − 40): a width that is no multiple of the packed
    64-bit words; the 19 joints of the test set that leave the window are missing there."""
    from pg2_pipeline.inputs.manifests import image_crop

    everything = keypoints_array(standard_file("fashion_annotation_test"))
    x = everything[..., 1]
    leaving = everything[((x >= 0) & ((x < 40) | (x >= 216))).any(axis=1)]
    cropped = image_crop("deepfashion", (256, 176)).keypoints(np.concatenate([fashion, leaving]), (256, 176))
    assert len(leaving) == 19 and (cropped[..., 1] < 176).all()
    assert_same(cropped, 256, 176)
