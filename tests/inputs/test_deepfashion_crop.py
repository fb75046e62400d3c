"""DeepFashion at 256×176 (``manifests.image_size: [256, 176]``): PATN's centre crop of the
256×256 frame, from a tiny DeepFashion twin through the manifests to one training step of each
stage and the PG² object."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from pg2_pipeline.config import params_from_dict
from pg2_pipeline.data.annotations import keypoints_array, standard_file
from pg2_pipeline.data.ingest import build_image_index
from pg2_pipeline.data.twin import build_twin
from pg2_pipeline.inputs.cache import Crop, TensorCache
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.inputs.manifests import build_manifests, image_crop, image_size, manifest_info, read_manifest
from pg2_pipeline.models import G1, G2, Discriminator
from pg2_pipeline.models.pg2 import PG2
from pg2_pipeline.pairs.stage import build_pairs
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.pose.stage import build_keypoints
from pg2_pipeline.schemas import KEYPOINTS, KEYPOINTS_NAME, joints_yx, read_table
from pg2_pipeline.skeleton import JOINT, MISSING, visible
from pg2_pipeline.train.stage import make_optimizer
from pg2_pipeline.train.stage1 import Stage1
from pg2_pipeline.train.stage2 import Stage2

PROJECT = Path(__file__).resolve().parents[2]
SIZE = (256, 176)
LEFT = 40  # PATN: PIL crop((40, 0, 216, 256)) of the 256×256 images


def deepfashion_params(image_size, annotation_files=()):
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    raw["base"].update(dataset="deepfashion", profile="tiny")
    # 4 + 2 identities (not the tiny profile's 24 + 12); one of the 4 held out for validation
    raw["twin"].update(train_identities=4, test_identities=2, workers=1, profiles={})
    raw["pairs"].update(validation_identities=1, validation_pairs=8, profiles={})
    for section in ("image_index", "keypoints"):
        raw[section]["workers"] = 1
    raw["keypoints"]["annotation_files"] = [str(f) for f in annotation_files]
    raw["manifests"]["image_size"] = image_size
    return params_from_dict(copy.deepcopy(raw))


def annotations_with_wrists_outside(paths: ProjectPaths) -> Path:
    """The standard annotations of the indexed images, with the right wrist of every second
    image moved left of the window (x 20) and the left wrist of every third past it (x 230):
    none of the twin's standard poses leaves PATN's window, 19 joints of the full test set do."""
    table = standard_file("fashion_annotation_test")
    poses = dict(zip(table.column("name").to_pylist(), keypoints_array(table)))
    lines = ["name:keypoints_y:keypoints_x"]
    for i, name in enumerate(pq.read_table(paths.image_index_table).column("image_id").to_pylist()):
        yx = poses[name].astype(int)
        for joint, every, x in ((JOINT["r_wrist"], 2, 20), (JOINT["l_wrist"], 3, 230)):
            if i % every == 0 and yx[joint, 1] >= 0:
                yx[joint, 1] = x
        lines.append(f"{name}: {yx[:, 0].tolist()}: {yx[:, 1].tolist()}")
    path = paths.root / "annotations.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> ProjectPaths:
    """A tiny DeepFashion twin materialized through the manifests at 256×176 (~2 s)."""
    params = deepfashion_params(list(SIZE))
    paths = ProjectPaths(tmp_path_factory.mktemp("deepfashion176"))
    build_twin(params, paths, progress=False)
    build_image_index(params, paths, progress=False)
    params = deepfashion_params(list(SIZE), [annotations_with_wrists_outside(paths)])
    build_keypoints(params, paths, progress=False)
    build_pairs(params, paths)
    build_manifests(params, paths, progress=False)
    return paths


def test_only_deepfashion_at_256x176_is_cropped():
    assert image_crop("deepfashion", SIZE) == Crop((256, 256), 0, LEFT)
    for dataset, size in (("deepfashion", (256, 256)), ("deepfashion", (128, 128)), ("market", (128, 64))):
        assert image_crop(dataset, size) is None  # resized from the standard frame, as before
    assert image_size(deepfashion_params([256, 176])) == SIZE
    with pytest.raises(ValueError, match=r"manifests.image_size must be \[height, width\], multiples of 16"):
        image_size(deepfashion_params([256, 180]))


def test_crop_shifts_keypoints_and_drops_the_joints_outside():
    yx = np.full((1, 18, 2), MISSING, np.float32)
    yx[0, :6] = [[10, 40], [10, 215], [10, 215.9], [10, 39.5], [10, 216], [255, 128]]
    out = Crop((256, 256), 0, LEFT).keypoints(yx, SIZE)
    assert out[0, 0].tolist() == [10, 0] and out[0, 1].tolist() == [10, 175]
    assert out[0, 2, 0] == 10 and out[0, 2, 1] == pytest.approx(175.9, abs=1e-4)  # pixel 175 still
    assert out[0, 3].tolist() == out[0, 4].tolist() == [MISSING, MISSING]  # left of / past the window
    assert out[0, 5].tolist() == [255, 88]
    assert (out[0, 6:] == MISSING).all()  # missing stays missing
    with pytest.raises(ValueError, match="does not fit"):
        Crop((256, 256), 0, 100).check(SIZE)


def test_cache_holds_patns_crop_of_the_twin_images(paths):
    kp = read_table(paths.keypoints_table, KEYPOINTS, KEYPOINTS_NAME)
    frame_yx = dict(zip(kp.column("image_id").to_pylist(), joints_yx(kp)))
    root = paths.twin_dataset
    for split in ("train", "test"):
        cache = TensorCache.open(paths.cache, split)
        table = read_manifest(paths.manifest_table(split))
        meta = manifest_info(paths.manifest_table(split))
        assert meta["image_size"] == list(SIZE) and meta["crop"] == {"frame": [256, 256], "top": 0, "left": LEFT}
        assert cache.size_hw == SIZE and cache.header["crop"] == meta["crop"]
        rows = table.to_pylist()
        for row in rows[:: max(1, len(rows) // 4)]:
            full = cv2.cvtColor(cv2.imread(str(root / row["to_path"])), cv2.COLOR_BGR2RGB)
            assert full.shape == (256, 256, 3)
            assert np.array_equal(cache.images[row["to_index"]], full[:, LEFT : LEFT + 176])  # no resampling
        # keypoints: x − 40 where the joint is in the window, missing where it is not
        dropped = 0
        for i, image_id in enumerate(cache.image_ids):
            yx = frame_yx[image_id]
            inside = visible(yx) & (yx[:, 1] >= LEFT) & (yx[:, 1] < LEFT + 176)
            assert np.array_equal(cache.keypoints[i][inside], yx[inside] - [0, LEFT])
            assert (cache.keypoints[i][~inside] == MISSING).all()
            dropped += int((visible(yx) & ~inside).sum())
        assert dropped > 0  # the moved wrists
        assert np.array_equal(
            np.array(rows[0]["to_keypoints_x"], np.float32), cache.keypoints[rows[0]["to_index"], :, 1]
        )


def test_one_training_step_of_each_stage_and_generation_at_256x176(paths):
    loader = PairLoader.from_manifest(paths, "train", 2, seed=0, flip=True)
    step = next(s for s in range(50) if loader.indices(s)[1].any())  # a batch with a mirrored pair
    batch = loader.batch(step)
    assert batch.condition.shape == batch.target.shape == (2, 3, *SIZE)
    assert batch.target_map.shape == (2, 18, *SIZE) and batch.target_mask.shape == (2, 1, *SIZE)
    assert batch.target_mask.sum() > 0

    torch.manual_seed(0)
    g1, g2, d = G1(*SIZE, base_channels=8), G2(*SIZE, base_channels=8), Discriminator(*SIZE, base_channels=8)
    before = {k: v.clone() for k, v in g1.state_dict().items()}
    out1 = Stage1(g1, make_optimizer(g1.parameters())).step(batch, return_images=True)
    assert out1.images["G1"].shape == (2, 3, *SIZE) and np.isfinite(out1["loss_G1"])
    assert all(not torch.equal(before[k], v) for k, v in g1.state_dict().items())
    opts = make_optimizer(g2.parameters()), make_optimizer(d.parameters())
    out2 = Stage2(g1, g2, d, *opts, 50.0, d_variant="deepfashion").step(batch, return_images=True)
    assert all(np.isfinite(v) for v in out2.values())
    assert all(image.shape == (2, 3, *SIZE) for image in out2.images.values())

    test = TensorCache.open(paths.cache, "test")
    generated = PG2(g1, g2).eval().generate(np.array(test.images[:2]), test.keypoints[:2])
    assert generated.shape == (2, *SIZE, 3) and generated.dtype == np.uint8
