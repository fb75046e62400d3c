"""The keypoints stage: joining annotation files (counts both ways, malformed lines), the
BlazePose backend through the same stage, and the pictures it writes."""

import shutil

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from skimage import data as skdata

from pg2_pipeline import summaries
from pg2_pipeline.config import load_params
from pg2_pipeline.data.annotations import AnnotationFormatError
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.pose.stage import build_keypoints
from pg2_pipeline.schemas import KEYPOINTS, read_table

from conftest import copy_project, materialize_through, set_params


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("kp") / "project")
    materialize_through(root, "image_index")
    return root


def fresh_copy(indexed, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(indexed, root)
    return root


def test_standard_annotations_join_every_indexed_image(indexed, tmp_path):
    root = fresh_copy(indexed, tmp_path)
    paths = ProjectPaths(root)
    summary = build_keypoints(load_params(paths.params_file), paths, progress=False)
    table = read_table(paths.keypoints_table, KEYPOINTS, "keypoints")
    index = pq.read_table(paths.image_index_table)
    assert table.column("image_id").to_pylist() == index.column("image_id").to_pylist()  # one row per image
    assert summary.not_in_file == 0 and all(table.column("found").to_pylist())
    # the standard files also annotate every image the tiny twin did not render
    assert summary.not_in_index == 12936 + 19732 - index.num_rows
    assert set(table.column("backend").to_pylist()) == {"annotations"}
    assert summary.coverage >= 0.8
    assert paths.keypoints_preview.stat().st_size > 10_000 and paths.keypoints_maps_preview.is_file()


def test_user_annotation_file_counts_missing_names_both_ways(indexed, tmp_path):
    root = fresh_copy(indexed, tmp_path)
    paths = ProjectPaths(root)
    names = pq.read_table(paths.image_index_table).column("image_id").to_pylist()
    pose = "[10, 20, 20, 35, 50, 20, 35, 50, 60, 85, 110, 60, 85, 110, 8, 8, 9, 9]: [32, 32, 24, 22, 21, 40, 42, 43, 27, 27, 27, 37, 37, 37, 30, 34, 28, 36]"  # noqa: E501
    lines = (
        ["name:keypoints_y:keypoints_x"] + [f"{n}: {pose}" for n in names[:-5]] + [f"9999_c1s1_000001_01.jpg: {pose}"]
    )
    (root / "my.csv").write_text("\n".join(lines) + "\n")
    set_params(root, keypoints={"annotation_files": ["my.csv"]})
    summary = build_keypoints(load_params(paths.params_file), paths, progress=False)
    assert summary.not_in_file == 5 and summary.not_in_index == 1
    table = read_table(paths.keypoints_table, KEYPOINTS, "keypoints")
    found = table.column("found").to_pylist()
    assert found[-5:] == [False] * 5 and all(found[:-5])
    missing = table.slice(len(names) - 1, 1).to_pylist()[0]
    assert missing["note"] == "not in the annotation files" and missing["num_visible"] == 0
    assert set(missing["keypoints_y"]) == {-1.0}


def test_malformed_user_file_names_file_and_line(indexed, tmp_path):
    root = fresh_copy(indexed, tmp_path)
    (root / "bad.csv").write_text("name:keypoints_y:keypoints_x\n0002_c1s1_000451_03.jpg: [1, 2]: [3, 4]\n")
    set_params(root, keypoints={"annotation_files": ["bad.csv"]})
    paths = ProjectPaths(root)
    with pytest.raises(AnnotationFormatError, match=r"bad.csv:2: keypoints_y has 2 values, expected 18"):
        build_keypoints(load_params(paths.params_file), paths, progress=False)


def test_blazepose_backend_through_the_stage(tmp_path):
    """A small Market-layout folder of real photo crops: BlazePose finds the person; a blank
    image gives a flagged all-missing row instead of a crash."""
    root = copy_project(tmp_path / "project")
    ds = tmp_path / "market"
    astronaut = skdata.astronaut()[:, 64:448]  # person, 512x384
    crops = {
        "bounding_box_train/0001_c1s1_000001_01.jpg": astronaut,
        "bounding_box_train/0001_c2s1_000001_01.jpg": astronaut[:, ::-1],
        "bounding_box_test/0002_c1s1_000001_01.jpg": np.full((256, 128, 3), 127, np.uint8),
    }
    for rel, img in crops.items():
        (ds / rel).parent.mkdir(parents=True, exist_ok=True)
        small = cv2.resize(np.ascontiguousarray(img), (64, 128), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(ds / rel), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    set_params(
        root,
        image_index={"root": str(ds)},
        keypoints={"backend": "blazepose", "workers": 1, "num_shards": 2, "min_coverage": 0.5},
    )
    materialize_through(root, "image_index")
    paths = ProjectPaths(root)
    summary = build_keypoints(load_params(paths.params_file), paths, progress=False)
    rows = {r["image_id"]: r for r in read_table(paths.keypoints_table, KEYPOINTS, "keypoints").to_pylist()}
    person, mirrored, blank = (
        rows["0001_c1s1_000001_01.jpg"],
        rows["0001_c2s1_000001_01.jpg"],
        rows["0002_c1s1_000001_01.jpg"],
    )
    assert person["found"] and person["num_visible"] >= 5 and person["backend"] == "blazepose"
    assert mirrored["found"]
    assert not blank["found"] and blank["note"] == "no person detected" and blank["num_visible"] == 0
    assert summary.extraction["images_processed"] == 3
    # a rerun finds every shard up to date
    again = build_keypoints(load_params(paths.params_file), paths, progress=False)
    assert again.extraction["images_processed"] == 0 and again.extraction["shards_skipped"] == 2
    assert summaries.read(paths.summary("keypoints"), summaries.KeypointsSummary).backend == "blazepose"
