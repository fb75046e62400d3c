"""The synthetic twin: plan, render, build (pg2_pipeline/data/twin)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pg2_pipeline import summaries
from pg2_pipeline.config import Params, params_from_dict
from pg2_pipeline.data.annotations import keypoints_array, standard_file
from pg2_pipeline.data.names import parse_fashion_flat, parse_fashion_path
from pg2_pipeline.data.twin import TwinImage, build_twin, plan_twin, render_twin_image, render_twin_rgb
from pg2_pipeline.data.twin.appearance import appearance_for
from pg2_pipeline.data.twin.body import infer_view
from pg2_pipeline.data.twin.render import render_background
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.skeleton import FLIP_PERMUTATION, visible

PROJECT = Path(__file__).resolve().parents[2]
SEED = 1234


def make_params(dataset: str = "market", seed: int = SEED, **twin) -> Params:
    """Project params (every other section as in params.yaml) with a hand-set base and twin."""
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    raw["base"] = {"seed": seed, "dataset": dataset, "profile": "tiny"}
    raw["twin"] = {
        "train_identities": 2,
        "test_identities": 1,
        "test_fraction": 0.25,
        "jpeg_quality": 90,
        "workers": 1,
        "contact_sheet_identities": 2,
        **twin,
    }
    return params_from_dict(copy.deepcopy(raw))


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "summary.json"  # the summary records wall-clock time
    }


def market_item(row: int = 1, stem: str = "market_annotation_train") -> TwinImage:
    table = standard_file(stem)
    name = table.column("name")[row].as_py()
    pid, cam = name.split("_")[0], int(name.split("_")[1][1])
    return TwinImage(name, f"bounding_box_train/{name}", "train", pid, cam, keypoints_array(table)[row])


# --------------------------------------------------------------------------------------------
# Plan


def test_tiny_plan_respects_caps_and_keeps_splits_disjoint():
    items = plan_twin(make_params(train_identities=24, test_identities=12))
    train = {it.person_id for it in items if it.split == "train"}
    test = {it.person_id for it in items if it.split == "test" and it.is_identity}
    assert len(train) == 24 and len(test) == 12 and len(train | test) <= 40
    assert not train & test
    pids = [it.person_id for it in items]
    assert pids.count("-1") >= 4 and pids.count("0000") >= 4  # distractors and junk for ingest
    assert {it.split for it in items if not it.is_identity} == {"test"}
    for it in items:
        assert it.rel_path == f"{'bounding_box_train' if it.split == 'train' else 'bounding_box_test'}/{it.image_id}"
        assert 1 <= it.camera <= 6 and it.keypoints.shape == (18, 2)


def test_full_market_plan_renders_every_annotated_image_of_paired_identities():
    items = plan_twin(make_params(train_identities=None, test_identities=None))
    assert sum(it.split == "train" for it in items) == 12_936
    pairs = standard_file("market_pairs_test")
    paired = {n.split("_")[0] for col in ("from", "to") for n in pairs.column(col).to_pylist()}
    test_ids = {it.person_id for it in items if it.split == "test" and it.is_identity}
    assert test_ids == paired - {"-1", "0000"}
    pids = [it.person_id for it in items]
    assert pids.count("-1") == 3_819 and pids.count("0000") == 2_798
    assert len({it.image_id for it in items}) == len(items)


def test_plan_is_deterministic_and_seeded():
    ids = lambda seed: [it.image_id for it in plan_twin(make_params(seed=seed, train_identities=5, test_identities=3))]  # noqa: E731
    assert ids(7) == ids(7)
    assert ids(7) != ids(8)


def test_deepfashion_plan_splits_identities_and_prefers_paired_ones_for_test():
    items = plan_twin(make_params("deepfashion", train_identities=None, test_identities=None))
    train = {it.person_id for it in items if it.split == "train"}
    test = {it.person_id for it in items if it.split == "test"}
    assert not train & test and len(train | test) == 930
    assert abs(len(test) / 930 - 0.25) < 0.01
    pairs = standard_file("fashion_pairs_test")
    paired = {parse_fashion_flat(n).person_id for col in ("from", "to") for n in pairs.column(col).to_pylist()}
    assert test <= paired
    assert len(items) == 4_038 and all(it.camera is None for it in items)
    assert all(it.rel_path == parse_fashion_flat(it.image_id).path for it in items)


# --------------------------------------------------------------------------------------------
# Render


def test_sizes_and_jpeg():
    m = market_item()
    jpeg = render_twin_image(m, "market", SEED, 90)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (128, 64, 3)
    f = next(it for it in plan_twin(make_params("deepfashion")) if visible(it.keypoints).any())
    assert render_twin_rgb(f, "deepfashion", SEED).shape == (256, 256, 3)
    assert render_twin_image(m, "market", SEED, 90) == jpeg  # same inputs, same bytes


def test_person_covers_the_visible_joints():
    items = [market_item(r) for r in range(40)]
    hits = total = 0
    for it in items:
        diff = np.abs(render_twin_rgb(it, "market", SEED).astype(int) - render_background(it, "market", SEED)).sum(-1)
        for y, x in it.keypoints[visible(it.keypoints)]:
            if y < 128 and x < 64:
                total += 1
                hits += diff[int(y), int(x)] > 24
    assert total > 300 and hits / total > 0.9


def test_all_missing_pose_still_renders_a_plausible_frame():
    empty = np.full((18, 2), -1, np.float32)
    junk = TwinImage("0000_c3s1_000100_01.jpg", "bounding_box_test/x", "test", "0000", 3, empty)
    rgb = render_twin_rgb(junk, "market", SEED)
    assert rgb.shape == (128, 64, 3) and rgb.std() > 5  # a street, not a blank
    name = "fashionWOMENDressesid0000000201_1front.jpg"
    closeup = TwinImage(name, parse_fashion_flat(name).path, "train", parse_fashion_flat(name).person_id, None, empty)
    rgb = render_twin_rgb(closeup, "deepfashion", SEED)
    assert rgb.shape == (256, 256, 3) and rgb.std() > 3


def test_front_and_back_views_differ():
    front = next(
        it
        for it in (market_item(r) for r in range(200))
        if infer_view(it.keypoints) == "front" and visible(it.keypoints)[[0, 14, 15]].all()
    )
    # Same coordinates, left/right labels swapped: the same silhouette seen from behind.
    back = TwinImage(
        front.image_id, front.rel_path, "train", front.person_id, front.camera, front.keypoints[FLIP_PERMUTATION]
    )
    assert infer_view(back.keypoints) == "back"
    a, b = (render_twin_rgb(it, "market", SEED).astype(int) for it in (front, back))
    y, x = front.keypoints[0].astype(int)  # nose: face in front, hair behind
    head = np.abs(a - b)[max(0, y - 4) : y + 4, max(0, x - 4) : x + 4]
    assert head.mean() > 12


def test_appearance_is_per_identity_and_per_seed():
    ids = [f"{i:04d}" for i in range(2, 60)]
    assert appearance_for("0002", SEED, "market") == appearance_for("0002", SEED, "market")
    assert len({appearance_for(i, SEED, "market").top for i in ids}) > 40
    assert sum(appearance_for(i, 1, "market") != appearance_for(i, 2, "market") for i in ids) == len(ids)
    item = market_item()
    assert render_twin_image(item, "market", 1, 90) != render_twin_image(item, "market", 2, 90)


def test_top_colour_is_stable_within_and_differs_between_identities():
    items = plan_twin(make_params(train_identities=40, test_identities=0))
    solid = {}
    for it in items:
        app = appearance_for(it.person_id, SEED, "market")
        if app.pattern == "solid" and app.carry is None:
            solid.setdefault(it.person_id, []).append(it)

    def chest(it: TwinImage) -> np.ndarray | None:
        kp = it.keypoints
        if not visible(kp)[[1, 8, 11]].all():
            return None
        hip = (kp[8] + kp[11]) / 2
        y, x = (kp[1] + 0.65 * (hip - kp[1])).astype(int)  # below any chest print, above the belt
        return render_twin_rgb(it, "market", SEED)[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].reshape(-1, 3).mean(0)

    colours = {pid: [c for c in map(chest, its[:6]) if c is not None] for pid, its in solid.items()}
    colours = {pid: np.array(c) for pid, c in colours.items() if len(c) >= 3}
    assert len(colours) >= 4
    centres = {pid: c.mean(0) for pid, c in colours.items()}
    within = np.mean([np.abs(c - centres[pid]).sum(1).mean() for pid, c in colours.items()])
    between = np.mean([np.abs(centres[a] - centres[b]).sum() for a in centres for b in centres if a < b])
    assert within < 0.5 * between


# --------------------------------------------------------------------------------------------
# Build


def test_build_is_byte_identical_across_runs_and_worker_counts(tmp_path):
    one = build_twin(make_params(workers=1), ProjectPaths(tmp_path / "a"), progress=False)
    build_twin(make_params(workers=1), ProjectPaths(tmp_path / "b"), progress=False)
    build_twin(make_params(workers=2), ProjectPaths(tmp_path / "c"), progress=False)
    a, b, c = (tree_digest(ProjectPaths(tmp_path / d).asset_dir("twin")) for d in "abc")
    assert a == b == c and len(a) == one.total_images + 1  # + contact sheet
    assert one.identities == {"train": 2, "test": 1}
    assert one.distractor_images >= 4 and one.junk_images >= 4
    paths = ProjectPaths(tmp_path / "a")
    assert paths.twin_contact_sheet.is_file()
    assert (paths.twin_dataset / "bounding_box_train").is_dir()
    assert summaries.read(paths.summary("twin"), summaries.TwinSummary) == one
    jpgs = list(paths.twin_dataset.rglob("*.jpg"))
    assert len(jpgs) == one.total_images == one.images["train"] + one.images["test"]
    assert not list((tmp_path / "a").rglob("*.tmp"))


def test_rebuild_removes_stale_files(tmp_path):
    paths = ProjectPaths(tmp_path)
    stale = paths.twin_dataset / "bounding_box_train" / "9999_c1s1_000001_01.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    build_twin(make_params(train_identities=1, test_identities=1), paths, progress=False)
    assert not stale.exists()


def test_deepfashion_partition_file_matches_the_rendered_files(tmp_path):
    paths = ProjectPaths(tmp_path)
    summary = build_twin(make_params("deepfashion", train_identities=3, test_identities=2), paths, progress=False)
    root = paths.twin_dataset
    lines = (root / "Eval" / "list_eval_partition.txt").read_text().splitlines()
    assert int(lines[0]) == len(lines) - 2 == summary.total_images
    assert lines[1].split() == ["image_name", "item_id", "evaluation_status"]
    rows = [line.split() for line in lines[2:]]
    rendered = {str(p.relative_to(root)) for p in root.rglob("*.jpg")}
    assert {r[0] for r in rows} == rendered
    for path, item_id, status in rows:
        assert item_id == f"id_{parse_fashion_path(path).item_id}"
        assert status in ("train", "gallery")
    by_status = {s: {r[1] for r in rows if r[2] == s} for s in ("train", "gallery")}
    assert len(by_status["train"]) == 3 and len(by_status["gallery"]) == 2
    assert not by_status["train"] & by_status["gallery"]
    img = cv2.imread(str(root / rows[0][0]))
    assert img.shape == (256, 256, 3)


def test_bad_params_fail_with_the_key_named(tmp_path):
    with pytest.raises(ValueError, match="twin.test_fraction"):
        plan_twin(make_params("deepfashion", test_fraction=1.0))
    with pytest.raises(ValueError, match="twin.workers"):
        build_twin(make_params(workers=0), ProjectPaths(tmp_path), progress=False)
