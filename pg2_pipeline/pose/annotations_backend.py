"""The ``annotations`` keypoint backend: join standard annotation files onto the image index.

The default for the twin and for the real Market-1501 / DeepFashion benchmarks (the literature's
numbers are computed with these poses). Images without an annotation keep an all-missing row
flagged ``found=False``; names in the files but not in the index are counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from pg2_pipeline.data.annotations import keypoints_array, read_annotation_file, standard_file
from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.skeleton import MISSING, NUM_JOINTS, default_scores


class ConflictingAnnotationsError(ValueError):
    """The same image is annotated differently in two files."""


@dataclass(frozen=True)
class AnnotationJoin:
    yx: np.ndarray  # (N, 18, 2) in index order, -1 where missing
    scores: np.ndarray  # (N, 18)
    found: np.ndarray  # (N,) bool: the image has an annotation row
    sources: list[str]  # the files used
    not_in_file: int  # indexed images without annotation
    not_in_index: int  # annotated names that are not in the index (excluded, quarantined, absent)


def load_annotations(dataset: str, files: tuple[str, ...] | list[Path]) -> tuple[dict[str, np.ndarray], list[str]]:
    """name → (18, 2) from the given files, or from the shipped standard files when none."""
    if files:
        tables = [(str(f), read_annotation_file(f)) for f in files]
    else:
        tables = [
            (f"pg2_pipeline/data/standard/{stem}.parquet", standard_file(stem))
            for stem in dataset_spec(dataset).annotations.values()
        ]
    poses: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for source, table in tables:
        for name, yx in zip(table.column("name").to_pylist(), keypoints_array(table)):
            if name in poses and not np.array_equal(poses[name], yx):
                raise ConflictingAnnotationsError(f"'{name}' is annotated differently in {origin[name]} and {source}")
            poses[name] = yx
            origin.setdefault(name, source)
    return poses, [s for s, _ in tables]


def join_annotations(index: pa.Table, dataset: str, files: tuple[str, ...] | list[Path] = ()) -> AnnotationJoin:
    poses, sources = load_annotations(dataset, files)
    ids = index.column("image_id").to_pylist()
    yx = np.full((len(ids), NUM_JOINTS, 2), MISSING, np.float32)
    found = np.zeros(len(ids), bool)
    for i, name in enumerate(ids):
        pose = poses.get(name)
        if pose is not None:
            yx[i], found[i] = pose, True
    indexed = set(ids)
    return AnnotationJoin(
        yx=yx,
        scores=default_scores(yx),
        found=found,
        sources=sources,
        not_in_file=int((~found).sum()),
        not_in_index=sum(1 for name in poses if name not in indexed),
    )
