"""Pair mining rules, the standard test pairs (including missing and quarantined images) and
the identity-disjointness guarantee."""

import numpy as np
import pyarrow as pa
import pytest
from test_config import raw_params

from pg2_pipeline.config import params_from_dict
from pg2_pipeline.data.annotations import keypoints_array, standard_file
from pg2_pipeline.pairs.mining import carve_validation, leaked_identities, mine_pairs, mine_split, self_pairs
from pg2_pipeline.schemas import IMAGE_INDEX, QUARANTINE
from pg2_pipeline.skeleton import JOINT


def params(**pairs):
    """The project's params with ``pairs`` values; no validation split unless asked for."""
    raw = raw_params()
    raw["base"]["profile"] = "full"  # the plain values (the quick profile's selection needs a validation split)
    raw["pairs"].pop("profiles", None)
    raw["pairs"].update({"validation_identities": 0, **pairs})
    return params_from_dict(raw)


def full_pose() -> np.ndarray:
    yx = np.stack([np.arange(18) * 5 + 10, np.full(18, 30)], -1).astype(np.float32)
    return yx


def index_table(rows: list[tuple[str, str, str]]) -> pa.Table:
    """rows of (image_id, split, person)"""
    return pa.Table.from_pylist(
        [
            {"image_id": i, "rel_path": f"x/{i}", "dataset": "market", "split": s, "person_id": p, "camera": 1,
             "view": None, "height": 128, "width": 64, "bytes": 1, "content_hash": "0" * 64}
            for i, s, p in rows
        ],
        schema=IMAGE_INDEX,
    )  # fmt: skip


EMPTY_Q = pa.Table.from_pylist([], schema=QUARANTINE)


def test_all_ordered_pairs_of_different_images_per_identity():
    pairs, capped = mine_split(["a1", "a2", "a3", "b1", "b2", "c1"], ["a", "a", "a", "b", "b", "c"], None, seed=0)
    assert capped == 0
    assert [(x, y) for x, y, _ in pairs] == [
        ("a1", "a2"), ("a1", "a3"), ("a2", "a1"), ("a2", "a3"), ("a3", "a1"), ("a3", "a2"), ("b1", "b2"), ("b2", "b1"),
    ]  # fmt: skip  # c has a single image: no pair


def test_cap_is_a_seeded_deterministic_sample():
    ids = [f"a{i}" for i in range(6)]
    one, capped = mine_split(ids, ["a"] * 6, 7, seed=1)
    two, _ = mine_split(ids, ["a"] * 6, 7, seed=1)
    other, _ = mine_split(ids, ["a"] * 6, 7, seed=2)
    assert capped == 1 and len(one) == 7 and one == two and one != other
    assert len(set(one)) == 7 and all(x != y for x, y, _ in one)


def test_filters_min_joints_and_torso_are_counted():
    rows = [
        ("t1", "train", "p"),
        ("t2", "train", "p"),
        ("t3", "train", "p"),
        ("t4", "train", "p"),
        ("s1", "test", "q"),
        ("s2", "test", "q"),
    ]
    yx = np.stack([full_pose()] * 6)
    yx[1, :12] = -1  # only 6 joints visible
    yx[2, JOINT["r_hip"]] = -1  # torso incomplete
    found = np.array([True, True, True, False, True, True])  # t4: no pose at all
    pairs, _, report = mine_pairs(index_table(rows), yx, found, EMPTY_Q, params(test_protocol="mined"))
    assert report.removed_no_pose["train"] == 1
    assert report.removed_min_joints["train"] == 1
    assert report.removed_torso["train"] == 1
    train = [r for r in pairs.to_pylist() if r["split"] == "train"]
    assert train == []  # only t1 survives: no pair
    test = [(r["from_id"], r["to_id"]) for r in pairs.to_pylist() if r["split"] == "test"]
    assert test == [("s1", "s2"), ("s2", "s1")]
    # torso rule off: t3 is back
    pairs, _, _ = mine_pairs(index_table(rows), yx, found, EMPTY_Q, params(test_protocol="mined", require_torso=False))
    assert {(r["from_id"], r["to_id"]) for r in pairs.to_pylist() if r["split"] == "train"} == {
        ("t1", "t3"),
        ("t3", "t1"),
    }


def test_standard_pairs_with_missing_and_quarantined_images_are_reported():
    std = standard_file("market_pairs_test").slice(0, 4).to_pylist()
    ann = standard_file("market_annotation_test")
    kp_of = dict(zip(ann.column("name").to_pylist(), keypoints_array(ann)))
    present = [std[0]["from"], std[0]["to"], std[1]["from"], std[2]["from"], std[2]["to"]]
    rows = [(i, "test", i[:4]) for i in dict.fromkeys(present)]
    # pair 3's target is in the train split (e.g. a twin split), pair 2's target is absent
    rows.append((std[3]["from"], "test", std[3]["from"][:4]))
    rows.append((std[3]["to"], "train", std[3]["to"][:4]))
    index = index_table(rows)
    yx = np.stack([kp_of[r[0]] for r in rows])
    quarantine = pa.Table.from_pylist(
        [{"rel_path": f"bounding_box_test/{std[2]['to']}", "split": "test", "reason": "truncated", "detail": ""}],
        schema=QUARANTINE,
    )
    pairs, unused, report = mine_pairs(index, yx, np.ones(len(rows), bool), quarantine, params())
    test = [(r["from_id"], r["to_id"], r["source"]) for r in pairs.to_pylist() if r["split"] == "test"]
    assert (std[0]["from"], std[0]["to"], "standard") in test
    usable = set(present) - {std[2]["to"]}
    assert all(a in usable and b in usable for a, b, _ in test)  # elsewhere in the list: the reverse of pair 0
    reasons = {(r["from_id"], r["to_id"]): r["reason"] for r in unused.to_pylist()}
    assert reasons[(std[1]["from"], std[1]["to"])] == "not_indexed"
    assert reasons[(std[2]["from"], std[2]["to"])] == "quarantined"
    assert reasons[(std[3]["from"], std[3]["to"])] == "wrong_split"
    assert report.standard_pairs == 12000  # every standard pair is accounted for
    assert sum(report.standard_unused.values()) == 12000 - len(test)


def test_leaks_and_self_pairs_are_detected():
    table = pa.table(
        {
            "person_id": ["a", "a", "b"],
            "split": ["train", "test", "test"],
            "from_id": ["x", "y", "z"],
            "to_id": ["y", "y", "w"],
        }
    )
    assert leaked_identities(table) == {"a"}
    assert self_pairs(table) == 1


def test_real_market_annotations_give_disjoint_splits():
    """On the real standard annotations (all of Market's 751 train ids), mining stays disjoint."""
    rows, poses = [], []
    for split, stem in (("train", "market_annotation_train"), ("test", "market_annotation_test")):
        table = standard_file(stem)
        for name, yx in zip(table.column("name").to_pylist(), keypoints_array(table)):
            if name.startswith(("-1", "0000")):
                continue
            rows.append((name, split, name[:4]))
            poses.append(yx)
    pairs, unused, report = mine_pairs(index_table(rows), np.stack(poses), np.ones(len(rows), bool), EMPTY_Q, params())
    assert not leaked_identities(pairs) and self_pairs(pairs) == 0
    counts = dict(zip(*np.unique(pairs.column("split").to_numpy(zero_copy_only=False), return_counts=True)))
    assert counts["test"] == 12000 and unused.num_rows == 0
    assert 150_000 < counts["train"] < 300_000  # PATN lists ~263k train pairs with their filters


def test_validation_split_holds_out_whole_training_identities():
    rows = [(f"{p}{i}", "train", p) for p in "abcdefgh" for i in range(4)] + [(f"t{i}", "test", "t") for i in range(3)]
    yx = np.stack([full_pose()] * len(rows))
    found = np.ones(len(rows), bool)
    mined, _, _ = mine_pairs(index_table(rows), yx, found, EMPTY_Q, params(test_protocol="mined"))
    carved, _, _ = mine_pairs(
        index_table(rows),
        yx,
        found,
        EMPTY_Q,
        params(test_protocol="mined", validation_identities=2, validation_pairs=10),
    )
    by_split = {
        s: {p for p, sp in zip(carved.column("person_id").to_pylist(), carved.column("split").to_pylist()) if sp == s}
        for s in ("train", "val", "test")
    }
    assert len(by_split["val"]) == 2 and not by_split["val"] & by_split["train"] and by_split["test"] == {"t"}
    assert carved.column("split").to_pylist().count("val") == 10  # capped: 2 identities x 12 pairs > 10
    assert carved.column("split").to_pylist().count("train") == 6 * 12  # the held-out identities left training
    assert not leaked_identities(carved) and self_pairs(carved) == 0
    assert mined.column("split").to_pylist().count("train") == 8 * 12
    again, _, _ = mine_pairs(
        index_table(rows),
        yx,
        found,
        EMPTY_Q,
        params(test_protocol="mined", validation_identities=2, validation_pairs=10),
    )
    assert again.equals(carved)  # seeded


def test_validation_split_needs_identities_left_for_training():
    rows = [{"split": "train", "person_id": p, "from_id": f"{p}1", "to_id": f"{p}2"} for p in "ab"]
    with pytest.raises(ValueError, match="pairs.validation_identities is 2, but there are only 2 training identities"):
        carve_validation(rows, 2, 10, seed=0)
