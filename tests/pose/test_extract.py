"""The sharded keypoint runner: deterministic output, incremental reruns, error rows, masks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pg2_pipeline.pose.extract import (
    KEYPOINTS_SCHEMA,
    ShardSchemaError,
    extract_keypoints,
    load_shards,
    mask_path,
    shard_of,
    shard_path,
    table_to_arrays,
)
from pg2_pipeline.skeleton import JOINT, MISSING

NUM_SHARDS = 3


def write_crops(folder: Path, n: int) -> list[tuple[str, Path, str]]:
    """``n`` Market-sized (128x64) person crops of the astronaut, shifted and mirrored, as
    (image_id, path, content_hash) items."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    astro = data.astronaut()
    items = []
    for k in range(n):
        # windows 256 px wide that keep both shoulders (x 113 and 306; mirrored 205 and 398)
        img, x0 = (astro[:, ::-1], 256 - (56 + 10 * k)) if k % 2 else (astro, 56 + 10 * k)
        crop = cv2.resize(np.ascontiguousarray(img[:, x0 : x0 + 256]), (64, 128), interpolation=cv2.INTER_AREA)
        items.append(write_image(folder / f"crop{k:02d}.png", crop))
    return items


def write_image(path: Path, rgb: np.ndarray) -> tuple[str, Path, str]:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path.name, path, hashlib.sha256(path.read_bytes()).hexdigest()


def run(items, out_dir, **kwargs):
    kwargs = {"num_shards": NUM_SHARDS, "workers": 1, "progress": False, **kwargs}
    return extract_keypoints(items, out_dir, **kwargs)


def mtimes(out_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out_dir / "shards").glob("*.parquet")}


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    return write_crops(tmp_path_factory.mktemp("crops"), 6)


def test_shard_assignment_is_stable():
    # pinned: a change here would silently re-run every shard of existing outputs
    assert (
        shard_of("0002_c1s1_000451_03.jpg", 16)
        == int.from_bytes(hashlib.sha256(b"0002_c1s1_000451_03.jpg").digest()[:8], "big") % 16
    )
    assert [shard_of(f"img{i}", 7) for i in range(5)] == [shard_of(f"img{i}", 7) for i in range(5)]


def test_one_and_two_workers_give_identical_tables(crops, tmp_path):
    one = run(crops, tmp_path / "one", workers=1)
    two = run(crops, tmp_path / "two", workers=2)
    for result in (one, two):
        assert (result.shards_processed, result.images_processed, result.images_failed) == (NUM_SHARDS, 6, 0)
    a, b = one.load(), two.load()
    assert a.equals(b)
    assert a.column("image_id").to_pylist() == sorted(i[0] for i in crops)
    ids, yx, score = table_to_arrays(a)
    assert all(a.column("person_found").to_pylist())
    # every crop shows the astronaut's head and shoulders
    for name in ("nose", "r_shoulder", "l_shoulder"):
        assert (yx[:, JOINT[name]] >= 0).all() and (score[:, JOINT[name]] > 0).all(), name
    assert (yx[..., 0] <= 127).all() and (yx[..., 1] <= 63).all()


def test_reruns_compute_only_missing_or_changed_shards(crops, tmp_path):
    out = tmp_path / "out"
    first = run(crops, out)
    assert first.shards_processed == NUM_SHARDS and first.images_processed == len(crops)
    reference = load_shards(out)

    again = run(crops, out)
    assert (again.shards_processed, again.shards_skipped, again.images_processed) == (0, NUM_SHARDS, 0)

    # a crashed run: one shard missing, a temporary file left behind
    victim = shard_of(crops[0][0], NUM_SHARDS)
    shard_path(out, victim, NUM_SHARDS).unlink()
    (out / "shards" / f".{shard_path(out, victim, NUM_SHARDS).name}.x1y2.tmp").write_bytes(b"partial")
    before = mtimes(out)
    resumed = run(crops, out)
    assert resumed.shards_processed == 1 and resumed.stale_files_removed == 1
    assert resumed.images_processed == sum(shard_of(i[0], NUM_SHARDS) == victim for i in crops)
    after = mtimes(out)
    assert all(after[name] == t for name, t in before.items())  # the other shards were not rewritten
    assert load_shards(out).equals(reference)

    # a new image re-runs its own shard only
    new = write_image(crops[0][1].parent.parent / "new.png", cv2.imread(str(crops[1][1]))[..., ::-1])
    added = run([*crops, new], out)
    assert added.shards_processed == 1 and added.images_processed == sum(
        shard_of(i[0], NUM_SHARDS) == shard_of(new[0], NUM_SHARDS) for i in [*crops, new]
    )
    assert load_shards(out).num_rows == len(crops) + 1

    # a changed content hash re-runs its shard; another shard count replaces every file
    changed = [(i, p, h if i != crops[2][0] else "other") for i, p, h in [*crops, new]]
    assert run(changed, out).shards_processed == 1
    resharded = run(changed, out, num_shards=2)
    assert resharded.shards_processed == 2 and resharded.stale_files_removed == NUM_SHARDS
    assert sorted(p.name for p in (out / "shards").iterdir()) == [
        "shard-00000-of-00002.parquet",
        "shard-00001-of-00002.parquet",
    ]


def test_options_change_re_runs_everything(crops, tmp_path):
    from pg2_pipeline.pose.blazepose import BlazePoseOptions

    run(crops[:2], tmp_path)
    result = run(crops[:2], tmp_path, options=BlazePoseOptions(visibility_threshold=0.9))
    assert result.shards_processed == NUM_SHARDS


def test_unreadable_images_become_error_rows(crops, tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a JPEG")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    gone = tmp_path / "gone.png"
    items = [crops[0], ("garbage.jpg", garbage, "g"), ("empty.png", empty, "e"), ("gone.png", gone, "x")]
    result = run(items, tmp_path / "out", save_masks=True)
    assert result.images_processed == 4 and result.images_failed == 3
    assert dict(result.errors).keys() == {"garbage.jpg", "empty.png", "gone.png"}
    assert "No such file" in dict(result.errors)["gone.png"]
    rows = {r["image_id"]: r for r in result.load().to_pylist()}
    for image_id in ("garbage.jpg", "empty.png", "gone.png"):
        row = rows[image_id]
        assert not row["person_found"] and row["error"]
        assert row["keypoints_y"] == [MISSING] * 18 and row["scores"] == [0.0] * 18
        assert not mask_path(tmp_path / "out", image_id).exists()
    assert rows[crops[0][0]]["error"] is None and rows[crops[0][0]]["person_found"]


def test_blank_image_counts_as_no_person(tmp_path):
    item = write_image(tmp_path / "blank.png", np.zeros((128, 64, 3), np.uint8))
    result = run([item], tmp_path / "out")
    assert (result.images_no_person, result.images_failed) == (1, 0)
    row = result.load().to_pylist()[0]
    assert not row["person_found"] and row["error"] is None


def test_masks_are_written_and_checked_on_rerun(crops, tmp_path):
    out = tmp_path / "out"
    run(crops[:3], out, save_masks=True)
    for image_id, _, _ in crops[:3]:
        mask = cv2.imread(str(mask_path(out, image_id)), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (128, 64) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255} and (mask == 255).mean() > 0.2
    assert run(crops[:3], out, save_masks=True).shards_processed == 0
    mask_path(out, crops[1][0]).unlink()
    assert run(crops[:3], out, save_masks=True).shards_processed == 1
    # dropping an image removes its mask; turning masks off removes them all
    assert run(crops[:2], out, save_masks=True).stale_files_removed == 1
    run(crops[:2], out, save_masks=False)
    assert not list((out / "masks").iterdir())


def test_load_shards_rejects_foreign_or_incomplete_sets(crops, tmp_path):
    out = tmp_path / "out"
    run(crops[:2], out)
    table = load_shards(out)
    assert table.schema.remove_metadata().equals(KEYPOINTS_SCHEMA)
    bogus = pa.table({"image_id": ["a"], "keypoints_y": pa.array([[1.0] * 18], pa.list_(pa.float64()))})
    pq.write_table(bogus, shard_path(out, 1, NUM_SHARDS))
    expected = (
        r"shard-00001-of-00003\.parquet: .*missing field 'scores'.*"
        r"'keypoints_y': expected fixed_size_list<item: float>\[18\] not null, got list<element: double>"
    )
    with pytest.raises(ShardSchemaError, match=expected):
        load_shards(out)
    shard_path(out, 1, NUM_SHARDS).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 shards missing"):
        load_shards(out)
    # the runner replaces the foreign file instead of trusting it
    pq.write_table(bogus, shard_path(out, 1, NUM_SHARDS))
    assert run(crops[:2], out).shards_processed == 1
    assert load_shards(out).equals(table)


@pytest.mark.parametrize(
    "items, match",
    [
        ([("a.png", "a.png", "h"), ("a.png", "b.png", "h")], "duplicate image_id 'a.png'"),
        ([("sub/a.png", "a.png", "h")], "file name"),
        ([("a.png", "a.png")], r"items\[0\]: expected \(image_id, path, content_hash\)"),
        ([("a.png", "a.png", "")], "content_hash"),
    ],
)
def test_bad_items_are_rejected(tmp_path, items, match):
    with pytest.raises(ValueError, match=match):
        run(items, tmp_path)
