"""The ``manifests`` stage: one self-describing Parquet pair table per split plus the tensor
cache (:mod:`pg2_pipeline.inputs.cache`) that the pair loader reads."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pg2_pipeline import summaries
from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.inputs.cache import Crop, build_cache, scale_keypoints
from pg2_pipeline.paths import SPLITS
from pg2_pipeline.schemas import (
    IMAGE_INDEX,
    IMAGE_INDEX_NAME,
    KEYPOINTS,
    KEYPOINTS_NAME,
    MANIFEST,
    MANIFEST_NAME,
    PAIRS,
    PAIRS_NAME,
    joints_yx,
    read_table,
    table_metadata,
    write_table,
)
from pg2_pipeline.skeleton import NUM_JOINTS
from pg2_pipeline.summaries import ManifestsSummary, SplitCounts


def _lists(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1).astype(np.float32)), NUM_JOINTS)


def image_size(params) -> tuple[int, int]:
    """(H, W) the models train on: params manifests.image_size or the dataset's size."""
    if params.manifests.image_size is not None:
        size = tuple(params.manifests.image_size)
        # multiples of 16, not 32: DeepFashion's 256×176 (the models check their own rules)
        if len(size) != 2 or min(size) < 32 or any(s % 16 for s in size):
            raise ValueError(f"params manifests.image_size must be [height, width], multiples of 16, got {list(size)}")
        return size  # type: ignore[return-value]
    spec = dataset_spec(params.base.dataset)
    return spec.height, spec.width


def image_crop(dataset: str, size_hw: tuple[int, int]) -> Crop | None:
    """The window of the standard frame that a size of ``dataset`` is cut from (DeepFashion
    256×176: columns 40..215, PATN's crop), or None: the images are resized to ``size_hw``."""
    spec = dataset_spec(dataset)
    window = spec.crops.get(tuple(size_hw))
    return None if window is None else Crop((spec.height, spec.width), *window)


def build_manifests(params, paths, progress: bool = True) -> ManifestsSummary:
    start = time.perf_counter()
    index = read_table(paths.image_index_table, IMAGE_INDEX, IMAGE_INDEX_NAME)
    kp_table = read_table(paths.keypoints_table, KEYPOINTS, KEYPOINTS_NAME)
    pairs = read_table(paths.pairs_table, PAIRS, PAIRS_NAME)
    root = paths.resolve(params.image_index.root)
    size_hw = image_size(params)
    src_hw = (dataset_spec(params.base.dataset).height, dataset_spec(params.base.dataset).width)
    crop = image_crop(params.base.dataset, size_hw)
    rel_of = dict(zip(index.column("image_id").to_pylist(), index.column("rel_path").to_pylist()))
    kp_ids = kp_table.column("image_id").to_pylist()
    kp_all = joints_yx(kp_table)
    kp_row = {image_id: i for i, image_id in enumerate(kp_ids)}
    params_hash = params.section_hash("image_index", "keypoints", "pairs", "manifests")
    splits: dict[str, SplitCounts] = {}

    for split in SPLITS:
        rows = pairs.filter(pc.equal(pairs.column("split"), split))
        froms, tos = rows.column("from_id").to_pylist(), rows.column("to_id").to_pylist()
        missing = [i for i in set(froms) | set(tos) if i not in kp_row or i not in rel_of]
        if missing:
            raise ValueError(f"{paths.pairs_table}: image '{missing[0]}' of a {split} pair has no keypoints/index row")
        image_ids = sorted(set(froms) | set(tos))
        row_of = {image_id: i for i, image_id in enumerate(image_ids)}
        kps = kp_all[[kp_row[i] for i in image_ids]]
        kps = crop.keypoints(kps, size_hw) if crop is not None else scale_keypoints(kps, src_hw, size_hw)
        meta = {"dataset": params.base.dataset, "dataset_root": str(root), "params_hash": params_hash}
        if crop is not None:  # otherwise resized from the dataset's frame, as always
            meta["crop"] = crop.describe()
        cache = build_cache(
            paths.cache,
            split,
            image_ids,
            [root / rel_of[i] for i in image_ids],
            kps,
            size_hw,
            meta,
            workers=params.image_index.workers,
            progress=progress,
            crop=crop,
        )
        f_idx = np.array([row_of[i] for i in froms], np.int32)
        t_idx = np.array([row_of[i] for i in tos], np.int32)
        table = pa.table(
            {
                "pair_id": rows.column("pair_id"),
                "split": rows.column("split"),
                "person_id": rows.column("person_id"),
                "from_id": froms,
                "to_id": tos,
                "from_path": [rel_of[i] for i in froms],
                "to_path": [rel_of[i] for i in tos],
                "from_index": f_idx,
                "to_index": t_idx,
                "from_keypoints_y": _lists(kps[f_idx, :, 0]),
                "from_keypoints_x": _lists(kps[f_idx, :, 1]),
                "to_keypoints_y": _lists(kps[t_idx, :, 0]),
                "to_keypoints_x": _lists(kps[t_idx, :, 1]),
            }
        )
        counts = {
            "pairs": table.num_rows,
            "images": len(image_ids),
            "identities": len(set(rows.column("person_id").to_pylist())),
        }
        write_table(
            table,
            MANIFEST,
            MANIFEST_NAME,
            paths.manifest_table(split),
            {**meta, "split": split, "image_size": list(size_hw), **counts},
        )
        splits[split] = SplitCounts(**counts, cache_bytes=cache["bytes"])
    summary = ManifestsSummary(
        dataset=params.base.dataset,
        image_size=tuple(size_hw),
        params_hash=params_hash,
        splits=splits,
        seconds=round(time.perf_counter() - start, 2),
    )
    summaries.write(paths.summary("manifests"), summary)
    return summary


def read_manifest(path: str | Path) -> pa.Table:
    """A split's manifest, validated against :data:`~pg2_pipeline.schemas.MANIFEST`."""
    return read_table(path, MANIFEST, MANIFEST_NAME)


def manifest_info(path: str | Path) -> dict:
    return table_metadata(path)
