"""Manifests (schema, self-description), the tensor cache and the training loader (shapes,
ranges, determinism, flips) on a tiny twin."""

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pg2_pipeline.inputs.cache import TensorCache, scale_keypoints
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.inputs.manifests import read_manifest
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.pose.maps import pose_maps_and_masks
from pg2_pipeline.schemas import SchemaMismatchError, table_metadata
from pg2_pipeline.skeleton import JOINT, flip_horizontal


@pytest.fixture(scope="module")
def paths(tiny_manifests) -> ProjectPaths:
    return ProjectPaths(tiny_manifests)


def test_manifests_are_self_describing_and_match_the_pairs(paths):
    pairs = pq.read_table(paths.pairs_table)
    for split in ("train", "test"):
        table = read_manifest(paths.manifest_table(split))
        meta = table_metadata(paths.manifest_table(split))
        assert meta["dataset"] == "market" and meta["split"] == split
        assert meta["pairs"] == table.num_rows == sum(s == split for s in pairs.column("split").to_pylist())
        assert len(meta["params_hash"]) == 16 and meta["image_size"] == [128, 64]
        assert set(table.column("split").to_pylist()) == {split}


def test_reader_rejects_another_table_and_a_changed_column(paths, tmp_path):
    with pytest.raises(SchemaMismatchError, match="expected a 'manifest' table, found 'pairs'"):
        read_manifest(paths.pairs_table)
    table = pq.read_table(paths.manifest_table("test"))
    bad = table.set_column(
        table.schema.get_field_index("from_index"),
        "from_index",
        pa.array(table.column("from_index").to_numpy().astype(np.int64)),
    )
    bad = bad.replace_schema_metadata(table.schema.metadata)
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(SchemaMismatchError, match=r"bad.parquet: column 'from_index' has type int64, expected int32"):
        read_manifest(tmp_path / "bad.parquet")
    pq.write_table(table.drop(["to_path"]).replace_schema_metadata(table.schema.metadata), tmp_path / "short.parquet")
    with pytest.raises(SchemaMismatchError, match="column 'to_path'"):
        read_manifest(tmp_path / "short.parquet")


def test_cache_holds_the_decoded_images_and_keypoints(paths):
    cache = TensorCache.open(paths.cache, "train")
    table = read_manifest(paths.manifest_table("train"))
    root = paths.resolve("assets/twin/dataset")
    row = table.slice(7, 1).to_pylist()[0]
    image = cv2.cvtColor(cv2.imread(str(root / row["to_path"])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(cache.images[row["to_index"]], image)
    assert cache.image_ids[row["to_index"]] == row["to_id"]
    assert np.array_equal(cache.keypoints[row["to_index"], :, 0], np.array(row["to_keypoints_y"], np.float32))


def test_loader_batch_shapes_and_value_ranges(paths):
    loader = PairLoader.from_manifest(paths, "train", 8, seed=3, flip=True)
    batch = loader.batch(0)
    assert batch.condition.shape == batch.target.shape == (8, 3, 128, 64)
    assert batch.target_map.shape == (8, 18, 128, 64) and batch.target_mask.shape == (8, 1, 128, 64)
    for images in (batch.condition, batch.target):
        assert images.dtype == torch.float32 and images.min() >= -1 and images.max() <= 1
    assert set(batch.target_map.unique().tolist()) == {-1.0, 1.0}
    assert set(batch.target_mask.unique().tolist()) == {0.0, 1.0}


def test_batches_are_a_function_of_seed_and_step(paths):
    a = PairLoader.from_manifest(paths, "train", 8, seed=3, flip=True)
    b = PairLoader.from_manifest(paths, "train", 8, seed=3, flip=True)
    late = a.steps_per_epoch + 2  # second epoch, new permutation
    for step in (late, 0, 5):  # any order: resuming at a step needs no history
        assert torch.equal(a.batch(step).target, b.batch(step).target)
    assert not torch.equal(a.batch(0).target, a.batch(1).target)
    c = PairLoader.from_manifest(paths, "train", 8, seed=4, flip=True)
    assert not torch.equal(a.batch(0).target, c.batch(0).target)


def test_flip_mirrors_images_and_swaps_left_and_right(paths):
    loader = PairLoader.from_manifest(paths, "train", 16, seed=0, flip=True)
    step = next(s for s in range(50) if loader.indices(s)[1].any())
    rows, flips = loader.indices(step)
    batch = loader.batch(step)
    k = int(np.flatnonzero(flips)[0])
    cond_row, tgt_row = loader.pairs[rows[k]]
    original = torch.from_numpy(loader.cache.images[tgt_row].copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(batch.target[k], original.flip(-1))
    yx = loader.cache.keypoints[tgt_row]
    maps, mask = pose_maps_and_masks(torch.from_numpy(yx[None]), 128, 64)
    flipped_map = batch.target_map[k] > 0
    # the mirrored image's right shoulder is the original's left shoulder, mirrored
    for right, left in (("r_shoulder", "l_shoulder"), ("r_knee", "l_knee"), ("r_eye", "l_eye")):
        assert torch.equal(flipped_map[JOINT[right]], maps[0, JOINT[left]].flip(-1))
        assert torch.equal(flipped_map[JOINT[left]], maps[0, JOINT[right]].flip(-1))
    # and the same as drawing the pose flipped by the one pose module
    maps_f, mask_f = pose_maps_and_masks(torch.from_numpy(flip_horizontal(yx, 64)[None]), 128, 64)
    assert torch.equal(flipped_map, maps_f[0])
    assert torch.equal(batch.target_mask[k, 0] > 0, mask_f[0, 0])
    # the mask is the mirrored one up to int() truncation of the points along the limbs
    mirrored = mask[0, 0].flip(-1)
    iou = (mirrored & mask_f[0, 0]).sum() / (mirrored | mask_f[0, 0]).sum()
    assert iou > 0.8
    # unflipped samples are untouched
    j = int(np.flatnonzero(~flips)[0])
    assert torch.equal(
        batch.target[j],
        torch.from_numpy(loader.cache.images[loader.pairs[rows[j], 1]].copy()).permute(2, 0, 1).float() / 127.5 - 1,
    )


def test_evaluation_order_walks_every_test_pair_once(paths):
    loader = PairLoader.from_manifest(paths, "test", 32, shuffle=False)
    seen = np.concatenate([loader.indices(s)[0] for s in range(loader.steps_per_epoch)])
    assert np.array_equal(seen, np.arange(len(loader.pairs)))
    assert not any(loader.indices(s)[1].any() for s in range(loader.steps_per_epoch))


def test_keypoints_scale_with_the_image_size():
    yx = np.array([[10, 20], [-1, -1], [127, 63]], np.float32)
    out = scale_keypoints(yx, (128, 64), (64, 32))
    assert out.tolist() == [[5, 10], [-1, -1], [63.5, 31.5]]
