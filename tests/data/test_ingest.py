"""Ingest on hand-made dataset folders: every kind of bad file is quarantined with its reason,
distractors/junk are excluded and counted, missing or empty folders fail naming the path."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from pg2_pipeline.data.ingest import DatasetFolderError, ingest
from pg2_pipeline.schemas import IMAGE_INDEX, QUARANTINE


def jpeg(h: int, w: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def market(tmp_path) -> Path:
    root = tmp_path / "Market-1501"
    good = {
        "bounding_box_train/0002_c1s1_000451_03.jpg": jpeg(128, 64, 1),
        "bounding_box_train/0002_c2s1_000551_01.jpg": jpeg(128, 64, 2),
        "bounding_box_train/0007_c3s1_000999_02.jpg": jpeg(128, 64, 3),
        "bounding_box_test/0001_c1s1_001051_00.jpg": jpeg(128, 64, 4),
        "bounding_box_test/0001_c5s1_001151_01.jpg": jpeg(128, 64, 5),
        "bounding_box_test/-1_c1s1_000401_03.jpg": jpeg(128, 64, 6),  # distractor
        "bounding_box_test/0000_c1s1_000401_04.jpg": jpeg(128, 64, 7),  # junk
    }
    full = jpeg(128, 64, 8)
    bad = {
        "bounding_box_train/0009_c1s1_000001_01.jpg": full[: len(full) // 2],  # truncated
        "bounding_box_train/0009_c1s1_000002_01.jpg": b"",  # zero bytes
        "bounding_box_train/0009_c1s1_000003_01.jpg": b"not an image at all",
        "bounding_box_train/0009_c1s1_000004_01.jpg": b"\xff\xd8\xff\xe0" + bytes(200),  # JPEG header, garbage body
        "bounding_box_train/0009_c1s1_000005_01.jpg": jpeg(100, 50, 9),  # wrong size
        "bounding_box_train/Thumbs.db": b"\x00" * 30,  # bad name (real Market folders have one)
    }
    for rel, data in {**good, **bad}.items():
        write(root, rel, data)
    return root


def test_market_index_quarantine_and_exclusions(market):
    result = ingest(market, "market", workers=1, progress=False)
    assert result.index.schema.equals(IMAGE_INDEX) and result.quarantine.schema.equals(QUARANTINE)
    rows = result.index.to_pylist()
    assert [r["image_id"] for r in rows] == [
        "0001_c1s1_001051_00.jpg", "0001_c5s1_001151_01.jpg",  # test first (sorted by split)
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s1_000999_02.jpg",
    ]  # fmt: skip
    first = rows[2]
    assert first["split"] == "train" and first["person_id"] == "0002" and first["camera"] == 1
    assert (first["height"], first["width"]) == (128, 64) and len(first["content_hash"]) == 64
    assert first["rel_path"] == "bounding_box_train/0002_c1s1_000451_03.jpg"

    reasons = {r["rel_path"].split("/")[-1]: r["reason"] for r in result.quarantine.to_pylist()}
    assert reasons == {
        "0009_c1s1_000001_01.jpg": "truncated",
        "0009_c1s1_000002_01.jpg": "empty_file",
        "0009_c1s1_000003_01.jpg": "not_an_image",
        "0009_c1s1_000004_01.jpg": "unreadable",
        "0009_c1s1_000005_01.jpg": "wrong_size",
        "Thumbs.db": "bad_name",
    }
    assert result.excluded == {"distractor": 1, "junk": 1}
    s = result.summary()
    assert s["images_per_split"] == {"test": 2, "train": 3}
    assert s["identities_per_split"] == {"test": 1, "train": 2}
    assert s["quarantine_fraction"] == pytest.approx(6 / 11)
    # every file on disk is accounted for: indexed, quarantined or excluded
    on_disk = sum(1 for p in market.rglob("*") if p.is_file())
    assert result.index.num_rows + result.quarantine.num_rows + sum(result.excluded.values()) == on_disk


def test_workers_do_not_change_the_result(market):
    one = ingest(market, "market", workers=1, progress=False)
    two = ingest(market, "market", workers=2, progress=False)
    assert one.index.equals(two.index) and one.quarantine.equals(two.quarantine)


def test_size_check_can_be_switched_off(market):
    result = ingest(market, "market", check_size=False, progress=False)
    assert "0009_c1s1_000005_01.jpg" in [r.split("/")[-1] for r in result.index.column("rel_path").to_pylist()]


def test_same_id_in_both_splits_is_quarantined(market):
    write(market, "bounding_box_test/0002_c1s1_000451_03.jpg", jpeg(128, 64, 11))
    result = ingest(market, "market", progress=False)
    dupes = [r for r in result.quarantine.to_pylist() if r["reason"] == "duplicate_id"]
    assert len(dupes) == 2
    assert "0002_c1s1_000451_03.jpg" not in result.index.column("image_id").to_pylist()


def test_missing_and_empty_folders_fail_naming_the_path(tmp_path):
    with pytest.raises(DatasetFolderError, match=str(tmp_path / "nowhere")):
        ingest(tmp_path / "nowhere", "market", progress=False)
    root = tmp_path / "m"
    (root / "bounding_box_train").mkdir(parents=True)
    with pytest.raises(DatasetFolderError, match="bounding_box_test does not exist"):
        ingest(root, "market", progress=False)
    (root / "bounding_box_test").mkdir()
    with pytest.raises(DatasetFolderError, match="bounding_box_train is empty"):
        ingest(root, "market", progress=False)


def test_deepfashion_layout_with_split_file(tmp_path):
    root = tmp_path / "inshop"
    files = {
        "img/MEN/Denim/id_00000080/01_1_front.jpg": "train",
        "img/MEN/Denim/id_00000080/01_2_side.jpg": "train",
        "img/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg": "gallery",
        "img/WOMEN/Blouses_Shirts/id_00003372/03_1_front.jpg": "query",
    }
    for i, rel in enumerate(files):
        write(root, rel, jpeg(256, 256, i))
    write(root, "img/WOMEN/Dresses/id_00000002/02_1_front.jpg", jpeg(256, 256, 9))  # not in the split file
    listing = [f"{rel} {rel.split('/')[3]} {status}" for rel, status in files.items()]
    listing.append("img/MEN/Denim/id_00000099/01_1_front.jpg id_00000099 train")  # listed, not on disk
    write(
        root,
        "Eval/list_eval_partition.txt",
        ("\n".join([str(len(listing)), "image_name item_id evaluation_status", *listing]) + "\n").encode(),
    )

    result = ingest(root, "deepfashion", progress=False)
    rows = {r["image_id"]: r for r in result.index.to_pylist()}
    assert set(rows) == {
        "fashionMENDenimid0000008001_1front.jpg", "fashionMENDenimid0000008001_2side.jpg",
        "fashionWOMENBlouses_Shirtsid0000337203_3back.jpg", "fashionWOMENBlouses_Shirtsid0000337203_1front.jpg",
    }  # fmt: skip
    back = rows["fashionWOMENBlouses_Shirtsid0000337203_3back.jpg"]
    assert back["split"] == "test" and back["view"] == "back" and back["camera"] is None
    assert back["person_id"] == "fashionWOMENBlouses_Shirtsid00003372"
    assert [r["reason"] for r in result.quarantine.to_pylist()] == ["not_in_split_file"]
    assert result.missing_from_disk == 1


def test_deepfashion_without_split_file_fails(tmp_path):
    write(tmp_path / "d", "img/MEN/Denim/id_00000080/01_1_front.jpg", jpeg(256, 256))
    with pytest.raises(DatasetFolderError, match="list_eval_partition.txt does not exist"):
        ingest(tmp_path / "d", "deepfashion", progress=False)
