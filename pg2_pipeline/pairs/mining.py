"""Pair mining: ordered (condition, target) pairs of different images of the same identity.

Train pairs are always mined. Test pairs are by default the standard published lists (Market
12,000, DeepFashion 8,570) so numbers are comparable with the literature; ``mined`` applies the
train rules to the test split instead. The validation split is carved from the training
identities: ``validation_identities`` of them (a seeded choice) leave training, and a seeded
sample of ``validation_pairs`` of their mined pairs forms split ``val`` (curves and checkpoint
selection never look at the test pairs). Filters (params ``pairs``): a minimum number of visible
joints and the Deformable GAN torso rule (both shoulders and both hips visible). A per-identity cap
keeps a seeded sample. Standard pairs that cannot be used are listed with the reason.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import permutations

import numpy as np
import pyarrow as pa

from pg2_pipeline.data.annotations import standard_file
from pg2_pipeline.data.names import BadNameError, parse_fashion_path
from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.schemas import PAIRS, UNUSED_STANDARD_PAIRS
from pg2_pipeline.skeleton import has_torso, num_visible

UNUSED_REASONS = {
    "quarantined": "an image of the pair is in the ingest quarantine",
    "not_indexed": "an image of the pair is not in the image index (absent from the folder or excluded)",
    "wrong_split": "an image of the pair is in the train split (e.g. the DeepFashion twin's own split)",
    "same_image": "the pair repeats one image",
}


@dataclass
class MiningReport:
    images_per_split: dict[str, int] = field(default_factory=dict)
    removed_no_pose: dict[str, int] = field(default_factory=dict)
    removed_min_joints: dict[str, int] = field(default_factory=dict)
    removed_torso: dict[str, int] = field(default_factory=dict)
    capped_identities: dict[str, int] = field(default_factory=dict)
    standard_pairs: int = 0
    standard_unused: dict[str, int] = field(default_factory=dict)
    standard_targets_without_pose: int = 0


def _eligible(yx: np.ndarray, found: np.ndarray, min_joints: int, require_torso: bool) -> tuple[np.ndarray, dict]:
    """Boolean mask of images that may take part in mined pairs, and how many each filter removed
    (filters applied in order: no pose, min joints, torso)."""
    ok_pose = found
    ok_joints = ok_pose & (num_visible(yx) >= min_joints)
    ok = ok_joints & has_torso(yx) if require_torso else ok_joints
    removed = {
        "no_pose": int((~ok_pose).sum()),
        "min_joints": int((ok_pose & ~ok_joints).sum()),
        "torso": int((ok_joints & ~ok).sum()),
    }
    return ok, removed


def _identity_rng(seed: int, person_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(person_id.encode())])


def mine_split(
    ids: list[str], persons: list[str], cap: int | None, seed: int
) -> tuple[list[tuple[str, str, str]], int]:
    """All ordered pairs of different images per identity (a seeded sample of ``cap`` pairs when
    an identity has more). Returns (from, to, person) sorted by person then names, and the number
    of capped identities."""
    by_person: dict[str, list[str]] = defaultdict(list)
    for image_id, person in zip(ids, persons):
        by_person[person].append(image_id)
    pairs, capped = [], 0
    for person in sorted(by_person):
        images = sorted(by_person[person])
        candidates = list(permutations(images, 2))
        if cap is not None and len(candidates) > cap:
            keep = _identity_rng(seed, person).choice(len(candidates), size=cap, replace=False)
            candidates = [candidates[i] for i in sorted(keep)]
            capped += 1
        pairs += [(a, b, person) for a, b in candidates]
    return pairs, capped


def _quarantined_ids(quarantine: pa.Table, dataset: str) -> set[str]:
    ids = set()
    for rel in quarantine.column("rel_path").to_pylist():
        name = rel.rsplit("/", 1)[-1]
        if dataset == "deepfashion":
            try:
                name = parse_fashion_path(rel).flat
            except BadNameError:
                continue
        ids.add(name)
    return ids


def standard_test_pairs(
    dataset: str, split_of: dict[str, str], quarantined: set[str]
) -> tuple[list[tuple[str, str]], pa.Table]:
    """The published test pairs usable with this index, and the unused ones with their reason."""
    table = standard_file(dataset_spec(dataset).test_pairs)
    used, unused = [], []
    for a, b in zip(table.column("from").to_pylist(), table.column("to").to_pylist()):
        if a == b:
            reason = "same_image"
        elif a in quarantined or b in quarantined:
            reason = "quarantined"
        elif a not in split_of or b not in split_of:
            reason = "not_indexed"
        elif split_of[a] != "test" or split_of[b] != "test":
            reason = "wrong_split"
        else:
            used.append((a, b))
            continue
        unused.append({"from_id": a, "to_id": b, "reason": reason})
    return used, pa.Table.from_pylist(unused, schema=UNUSED_STANDARD_PAIRS)


def mine_pairs(
    index: pa.Table, keypoints_yx: np.ndarray, found: np.ndarray, quarantine: pa.Table, params
) -> tuple[pa.Table, pa.Table, MiningReport]:
    """Pairs of every split (see the module docstring). ``keypoints_yx``/``found`` are aligned
    with ``index`` rows. Returns (pairs, unused standard pairs, report)."""
    cfg, seed, dataset = params.pairs, params.base.seed, params.base.dataset
    ids = index.column("image_id").to_pylist()
    splits = np.array(index.column("split").to_pylist())
    persons = index.column("person_id").to_pylist()
    report = MiningReport()
    ok, _ = _eligible(keypoints_yx, found, cfg.min_joints, cfg.require_torso)

    rows: list[dict] = []
    protocols = {"train": "mined", "test": cfg.test_protocol}
    for split, protocol in protocols.items():
        in_split = splits == split
        report.images_per_split[split] = int(in_split.sum())
        if protocol == "mined":
            sel = np.flatnonzero(in_split)
            _, removed = _eligible(keypoints_yx[sel], found[sel], cfg.min_joints, cfg.require_torso)
            report.removed_no_pose[split] = removed["no_pose"]
            report.removed_min_joints[split] = removed["min_joints"]
            report.removed_torso[split] = removed["torso"]
            keep = np.flatnonzero(in_split & ok)
            mined, capped = mine_split(
                [ids[i] for i in keep], [persons[i] for i in keep], cfg.max_pairs_per_identity, seed
            )
            report.capped_identities[split] = capped
            rows += [{"split": split, "from_id": a, "to_id": b, "person_id": p, "source": "mined"} for a, b, p in mined]
        else:
            split_of = dict(zip(ids, splits.tolist()))
            person_of = dict(zip(ids, persons))
            has_pose = dict(zip(ids, found.tolist()))
            used, unused = standard_test_pairs(dataset, split_of, _quarantined_ids(quarantine, dataset))
            report.standard_pairs = len(used) + unused.num_rows
            report.standard_unused = dict(sorted(Counter(unused.column("reason").to_pylist()).items()))
            report.standard_targets_without_pose = sum(1 for _, b in used if not has_pose[b])
            rows += [
                {"split": split, "from_id": a, "to_id": b, "person_id": person_of[a], "source": "standard"}
                for a, b in used
            ]
            unused_table = unused
    if cfg.test_protocol == "mined":
        unused_table = pa.Table.from_pylist([], schema=UNUSED_STANDARD_PAIRS)
    rows = carve_validation(rows, cfg.validation_identities, cfg.validation_pairs, seed)
    for i, row in enumerate(rows):
        row["pair_id"] = i
    return pa.Table.from_pylist(rows, schema=PAIRS), unused_table, report


def carve_validation(rows: list[dict], identities: int, max_pairs: int, seed: int) -> list[dict]:
    """``rows`` with the train pairs of ``identities`` seeded train identities moved to split
    ``val`` (at most ``max_pairs`` of them, a seeded sample; the others are dropped: an identity
    is never in two splits)."""
    train_ids = sorted({r["person_id"] for r in rows if r["split"] == "train"})
    if identities <= 0:
        return rows
    if identities >= len(train_ids):
        raise ValueError(
            f"params pairs.validation_identities is {identities}, but there are only {len(train_ids)} training "
            "identities with pairs: keep most of them for training"
        )
    rng = np.random.default_rng([seed, zlib.crc32(b"validation")])
    held_out = {train_ids[i] for i in rng.choice(len(train_ids), size=identities, replace=False)}
    val = [r for r in rows if r["split"] == "train" and r["person_id"] in held_out]
    if len(val) > max_pairs:
        keep = set(rng.choice(len(val), size=max_pairs, replace=False).tolist())
        val = [r for i, r in enumerate(val) if i in keep]
    val = [{**r, "split": "val"} for r in val]
    kept = [r for r in rows if not (r["split"] == "train" and r["person_id"] in held_out)]
    return [r for r in kept if r["split"] == "train"] + val + [r for r in kept if r["split"] != "train"]


def leaked_identities(pairs: pa.Table) -> set[str]:
    """Identities that appear in pairs of more than one split (must be empty)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for person, split in zip(pairs.column("person_id").to_pylist(), pairs.column("split").to_pylist()):
        seen[person].add(split)
    return {p for p, s in seen.items() if len(s) > 1}


def self_pairs(pairs: pa.Table) -> int:
    """Pairs whose condition and target are the same image (must be 0)."""
    a = np.array(pairs.column("from_id").to_pylist(), dtype=object)
    b = np.array(pairs.column("to_id").to_pylist(), dtype=object)
    return int((a == b).sum())
