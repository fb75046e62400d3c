"""The ``keypoints`` stage: one OpenPose-18 pose per indexed image, from the backend chosen in
params (``annotations``: the standard files; ``blazepose``: offline MediaPipe BlazePose), plus
pictures: skeletons on sample images and image | pose map | pose mask strips."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pyarrow as pa
import torch

from pg2_pipeline import fileio, summaries, viz
from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.pose.annotations_backend import join_annotations
from pg2_pipeline.pose.draw import draw_skeleton, mask_rgb, pose_map_rgb
from pg2_pipeline.pose.maps import pose_maps_and_masks
from pg2_pipeline.schemas import IMAGE_INDEX, IMAGE_INDEX_NAME, KEYPOINTS, KEYPOINTS_NAME, read_table, write_table
from pg2_pipeline.skeleton import NUM_JOINTS, in_bounds, num_visible
from pg2_pipeline.summaries import KeypointsSummary


def _from_blazepose(
    index: pa.Table, params, paths, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, dict]:
    from pg2_pipeline.pose.blazepose import BlazePoseOptions
    from pg2_pipeline.pose.extract import extract_keypoints, table_to_arrays

    cfg = params.keypoints
    root = paths.resolve(params.image_index.root)
    items = [
        (i, root / p, h)
        for i, p, h in zip(*(index.column(c).to_pylist() for c in ("image_id", "rel_path", "content_hash")))
    ]
    options = BlazePoseOptions(visibility_threshold=cfg.visibility_threshold, upscale_min_side=cfg.upscale_min_side)
    result = extract_keypoints(
        items,
        paths.keypoints_extraction,
        options=options,
        workers=cfg.workers,
        num_shards=cfg.num_shards,
        save_masks=cfg.keep_segmentation,
        progress=progress,
    )
    table = result.load()
    ids, yx, scores = table_to_arrays(table)
    row = {image_id: i for i, image_id in enumerate(ids)}
    order = [row[i] for i in index.column("image_id").to_pylist()]
    found = np.asarray(table.column("person_found").to_pylist(), bool)[order]
    errors = table.column("error").to_pylist()
    notes = [errors[i] or (None if found[j] else "no person detected") for j, i in enumerate(order)]
    return yx[order], scores[order], found, notes, {"extraction": result.summary()}


def build_keypoints(params, paths, progress: bool = True) -> KeypointsSummary:
    start = time.perf_counter()
    cfg = params.keypoints
    index = read_table(paths.image_index_table, IMAGE_INDEX, IMAGE_INDEX_NAME)
    if cfg.backend == "annotations":
        files = [paths.resolve(f) for f in cfg.annotation_files]
        join = join_annotations(index, params.base.dataset, files)
        yx, scores, found = join.yx, join.scores, join.found
        notes = [None if f else "not in the annotation files" for f in found]
        extra = {
            "annotation_files": tuple(join.sources),
            "not_in_file": join.not_in_file,
            "not_in_index": join.not_in_index,
        }
    else:
        yx, scores, found, notes, extra = _from_blazepose(index, params, paths, progress)

    visible_count = num_visible(yx)
    splits = np.array(index.column("split").to_pylist())
    heights = np.asarray(index.column("height").to_pylist())
    widths = np.asarray(index.column("width").to_pylist())
    inside = np.array([in_bounds(p, h, w).all() for p, h, w in zip(yx, heights, widths)])
    has_pose = visible_count >= cfg.min_joints
    coverage = {s: round(float(has_pose[splits == s].mean()), 4) for s in sorted(set(splits))}
    table = pa.table(
        {
            "image_id": index.column("image_id"),
            "split": index.column("split"),
            "keypoints_y": pa.FixedSizeListArray.from_arrays(pa.array(yx[..., 0].reshape(-1)), NUM_JOINTS),
            "keypoints_x": pa.FixedSizeListArray.from_arrays(pa.array(yx[..., 1].reshape(-1)), NUM_JOINTS),
            "scores": pa.FixedSizeListArray.from_arrays(pa.array(scores.reshape(-1).astype(np.float32)), NUM_JOINTS),
            "num_visible": visible_count.astype(np.int8),
            "backend": [cfg.backend] * index.num_rows,
            "found": found,
            "note": notes,
        }
    )
    coverage_all = round(float(has_pose.mean()), 4)
    meta = {"backend": cfg.backend, "images": index.num_rows, "coverage": coverage_all}
    write_table(table, KEYPOINTS, KEYPOINTS_NAME, paths.keypoints_table, meta)
    root = paths.resolve(params.image_index.root)
    rels = index.column("rel_path").to_pylist()
    fileio.write_png(paths.keypoints_preview, skeleton_sheet(root, rels, yx, has_pose))
    fileio.write_png(
        paths.keypoints_maps_preview, maps_sheet(root, rels, yx, has_pose, dataset_spec(params.base.dataset))
    )
    summary = KeypointsSummary(
        backend=cfg.backend,
        images=index.num_rows,
        found=int(found.sum()),
        not_found_reasons=dict(Counter(n for n in notes if n)),
        min_joints=cfg.min_joints,
        coverage_per_split=coverage,
        coverage=coverage_all,
        min_coverage=cfg.min_coverage,
        out_of_bounds_images=int((~inside).sum()),
        mean_visible_joints=round(float(visible_count.mean()), 2),
        params_hash=params.section_hash("image_index", "keypoints"),
        seconds=round(time.perf_counter() - start, 2),
        **extra,
    )
    summaries.write(paths.summary("keypoints"), summary)
    return summary


def _samples(has_pose: np.ndarray, n: int) -> np.ndarray:
    candidates = np.flatnonzero(has_pose)
    if len(candidates) == 0:
        candidates = np.arange(len(has_pose))
    return candidates[np.linspace(0, len(candidates) - 1, min(n, len(candidates))).astype(int)]


def skeleton_sheet(root, rels: list[str], yx: np.ndarray, has_pose: np.ndarray, n: int = 16) -> np.ndarray:
    """Sample images with their skeletons drawn, for the Dagster UI and the README."""
    tiles = []
    for i in _samples(has_pose, n):
        image = viz.read_rgb(root / rels[i])
        scale = max(1, 256 // image.shape[0])
        tiles.append(draw_skeleton(image, yx[i], scale=scale, thickness=max(1, scale)))
    return viz.grid(tiles, cols=min(8, len(tiles)))


def maps_sheet(root, rels: list[str], yx: np.ndarray, has_pose: np.ndarray, spec, n: int = 4) -> np.ndarray:
    """image | pose map | pose mask for a few samples: what the network is given."""
    idx = _samples(has_pose, n)
    maps, masks = pose_maps_and_masks(torch.from_numpy(yx[idx]), spec.height, spec.width)
    rows = []
    for k, i in enumerate(idx):
        image = viz.read_rgb(root / rels[i])
        scale = max(1, 256 // image.shape[0])
        rows += [viz.upscale(a, scale) for a in (image, pose_map_rgb(maps[k].numpy()), mask_rgb(masks[k, 0].numpy()))]
    return viz.grid(rows, cols=6 if len(idx) > 1 else 3)
