"""The standard keypoint annotation and test-pair files of the pose-transfer literature.

Annotation files (Deformable GAN, made with a COCO OpenPose model) have the header
``name:keypoints_y:keypoints_x`` and rows ``NAME: [18 ints y]: [18 ints x]`` with -1 for a missing
joint. Pair files have the header ``from,to``. The project ships them as compact Parquet tables
(``pg2_pipeline/data/standard/``, rebuilt by ``scripts/build_standard_files.py``); users may
point the keypoints stage at other files in the same text format.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pg2_pipeline.schemas import joints_yx
from pg2_pipeline.skeleton import NUM_JOINTS, from_annotation_lists

ANNOTATION_HEADER = "name:keypoints_y:keypoints_x"
PAIRS_HEADER = "from,to"

ANNOTATION_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("keypoints_y", pa.list_(pa.int16(), NUM_JOINTS), nullable=False),
        pa.field("keypoints_x", pa.list_(pa.int16(), NUM_JOINTS), nullable=False),
    ]
)
PAIRS_SCHEMA = pa.schema([pa.field("from", pa.string(), nullable=False), pa.field("to", pa.string(), nullable=False)])


class AnnotationFormatError(ValueError):
    """A standard annotation or pair file that does not follow the format."""


def _int_list(text: str, path: Path, lineno: int, what: str) -> list[int]:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise AnnotationFormatError(f"{path}:{lineno}: {what} must be a [..] list of {NUM_JOINTS} ints, got {text!r}")
    try:
        values = [int(v) for v in text[1:-1].split(",")]
    except ValueError:
        raise AnnotationFormatError(f"{path}:{lineno}: {what} holds a non-integer value: {text!r}") from None
    if len(values) != NUM_JOINTS:
        raise AnnotationFormatError(f"{path}:{lineno}: {what} has {len(values)} values, expected {NUM_JOINTS}")
    if any(v < -1 for v in values):
        raise AnnotationFormatError(f"{path}:{lineno}: {what} has a value below -1 (-1 means missing)")
    return values


def read_annotation_file(path: str | Path) -> pa.Table:
    """Parses a standard annotation file into an :data:`ANNOTATION_SCHEMA` table.

    Raises :class:`AnnotationFormatError` naming the file and line of the first malformed row.
    """
    path = Path(path)
    names, ys, xs = [], [], []
    seen: dict[str, int] = {}
    with path.open(newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if lineno == 1:
                if line.replace(" ", "") != ANNOTATION_HEADER:
                    raise AnnotationFormatError(f"{path}:1: expected the header '{ANNOTATION_HEADER}', got {line!r}")
                continue
            if not line.strip():
                continue
            parts = line.split(":")
            if len(parts) != 3:
                raise AnnotationFormatError(
                    f"{path}:{lineno}: expected 'NAME: [y x {NUM_JOINTS}]: [x x {NUM_JOINTS}]', got {line!r}"
                )
            name = parts[0].strip()
            if not name:
                raise AnnotationFormatError(f"{path}:{lineno}: empty image name")
            if name in seen:
                raise AnnotationFormatError(f"{path}:{lineno}: '{name}' already given on line {seen[name]}")
            seen[name] = lineno
            names.append(name)
            ys.append(_int_list(parts[1], path, lineno, "keypoints_y"))
            xs.append(_int_list(parts[2], path, lineno, "keypoints_x"))
    return pa.table({"name": names, "keypoints_y": ys, "keypoints_x": xs}, schema=ANNOTATION_SCHEMA)


def read_pairs_file(path: str | Path) -> pa.Table:
    """Parses a standard ``from,to`` pair file into a :data:`PAIRS_SCHEMA` table."""
    path = Path(path)
    froms, tos = [], []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        for lineno, row in enumerate(reader, start=1):
            if lineno == 1:
                if ",".join(c.strip() for c in row) != PAIRS_HEADER:
                    raise AnnotationFormatError(f"{path}:1: expected the header '{PAIRS_HEADER}', got {row!r}")
                continue
            if not row:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise AnnotationFormatError(f"{path}:{lineno}: expected 'from,to' image names, got {row!r}")
            froms.append(row[0].strip())
            tos.append(row[1].strip())
    return pa.table({"from": froms, "to": tos}, schema=PAIRS_SCHEMA)


def keypoints_array(table: pa.Table) -> np.ndarray:
    """``(N, 18, 2)`` float32 (y, x) of an annotation table, -1 for missing joints."""
    yx = joints_yx(table)
    return from_annotation_lists(yx[..., 0], yx[..., 1])


def standard_file(stem: str) -> pa.Table:
    """A packaged standard file (``market_annotation_train``, ``market_pairs_test``, ...)."""
    ref = resources.files("pg2_pipeline.data.standard") / f"{stem}.parquet"
    if not ref.is_file():
        raise FileNotFoundError(f"packaged standard file '{stem}.parquet' is missing from pg2_pipeline/data/standard")
    with resources.as_file(ref) as path:
        return pq.read_table(path)
