"""The ``pairs`` stage: mine pairs, take the standard test pairs, report what each filter
removed, and draw the pairs-per-identity histogram."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from pg2_pipeline import fileio, summaries, viz
from pg2_pipeline.pairs.mining import leaked_identities, mine_pairs, self_pairs
from pg2_pipeline.paths import SPLITS
from pg2_pipeline.schemas import (
    IMAGE_INDEX,
    IMAGE_INDEX_NAME,
    KEYPOINTS,
    KEYPOINTS_NAME,
    PAIRS,
    PAIRS_NAME,
    QUARANTINE,
    QUARANTINE_NAME,
    UNUSED_STANDARD_PAIRS,
    UNUSED_STANDARD_PAIRS_NAME,
    joints_yx,
    read_table,
    write_table,
)
from pg2_pipeline.summaries import PairsSummary


def build_pairs(params, paths) -> PairsSummary:
    start = time.perf_counter()
    index = read_table(paths.image_index_table, IMAGE_INDEX, IMAGE_INDEX_NAME)
    quarantine = read_table(paths.image_index_quarantine, QUARANTINE, QUARANTINE_NAME)
    kp = read_table(paths.keypoints_table, KEYPOINTS, KEYPOINTS_NAME)
    if kp.column("image_id").to_pylist() != index.column("image_id").to_pylist():
        raise ValueError(f"{paths.keypoints_table} does not match {paths.image_index_table}: rematerialize keypoints")
    yx = joints_yx(kp)
    found = np.asarray(kp.column("found").to_pylist(), bool)
    pairs, unused, report = mine_pairs(index, yx, found, quarantine, params)

    splits = pairs.column("split").to_pylist()
    persons = pairs.column("person_id").to_pylist()
    per_identity = {s: Counter(p for p, sp in zip(persons, splits) if sp == s) for s in SPLITS}
    train_pairs = sum(per_identity["train"].values())
    pairs_per_split = {s: sum(c.values()) for s, c in per_identity.items()}
    params_hash = params.section_hash("image_index", "keypoints", "pairs")
    meta = {
        "dataset": params.base.dataset,
        "pairs_per_split": pairs_per_split,
        "test_protocol": params.pairs.test_protocol,
        "params_hash": params_hash,
    }
    write_table(pairs, PAIRS, PAIRS_NAME, paths.pairs_table, meta)
    write_table(unused, UNUSED_STANDARD_PAIRS, UNUSED_STANDARD_PAIRS_NAME, paths.pairs_unused_standard, meta)
    fileio.write_png(paths.pairs_histogram, histogram(per_identity))
    summary = PairsSummary(
        dataset=params.base.dataset,
        pairs_per_split=pairs_per_split,
        identities_per_split={s: len(c) for s, c in per_identity.items()},
        test_protocol=params.pairs.test_protocol,
        flip_augmentation=params.pairs.flip_augmentation,
        train_pairs_with_flips=2 * train_pairs if params.pairs.flip_augmentation else train_pairs,
        images_per_split=report.images_per_split,
        removed_by_filter={
            "no_pose": report.removed_no_pose,
            "min_joints": report.removed_min_joints,
            "torso": report.removed_torso,
        },
        capped_identities=report.capped_identities,
        standard_pairs=report.standard_pairs,
        standard_unused=report.standard_unused,
        standard_targets_without_pose=report.standard_targets_without_pose,
        leaked_identities=tuple(sorted(leaked_identities(pairs))),
        self_pairs=self_pairs(pairs),
        params_hash=params_hash,
        seconds=round(time.perf_counter() - start, 2),
    )
    summaries.write(paths.summary("pairs"), summary)
    return summary


SPLIT_COLORS = {"train": "#4C72B0", "val": "#55A868", "test": "#DD8452"}


def histogram(per_identity: dict[str, Counter]) -> np.ndarray:
    plt = viz.pyplot()
    fig, axes = plt.subplots(1, len(per_identity), figsize=(4.2 * len(per_identity), 3), dpi=110)
    for ax, (split, counts) in zip(np.atleast_1d(axes), per_identity.items()):
        values = list(counts.values()) or [0]
        ax.hist(values, bins=min(40, max(5, len(set(values)))), color=SPLIT_COLORS[split])
        ax.set_title(f"{split}: {sum(values)} pairs, {len(counts)} identities", fontsize=9)
        ax.set_xlabel("pairs per identity", fontsize=8)
        ax.set_ylabel("identities", fontsize=8)
        ax.tick_params(labelsize=7)
    return viz.figure_rgb(fig)
