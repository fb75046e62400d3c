"""One pyarrow schema per table the pipeline writes, used for both writing and validating.

Tables are self-describing: :func:`write_table` stores the schema name and any metadata
(params hash, dataset, counts) in the Parquet schema metadata, and :func:`read_table` refuses a
file whose columns or types differ from the expected schema, naming the file and the column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pg2_pipeline.fileio import atomic_path
from pg2_pipeline.skeleton import NUM_JOINTS


class SchemaMismatchError(ValueError):
    """A Parquet file that does not hold the table the reader expects."""


IMAGE_INDEX = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),  # standard name (Market file / flat DeepFashion)
        pa.field("rel_path", pa.string(), nullable=False),  # path under the dataset root
        pa.field("dataset", pa.string(), nullable=False),  # market | deepfashion
        pa.field("split", pa.string(), nullable=False),  # train | test
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("camera", pa.int8(), nullable=True),  # Market only
        pa.field("view", pa.string(), nullable=True),  # DeepFashion only (front, back, side, ...)
        pa.field("height", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),  # SHA-256 of the file
    ]
)
IMAGE_INDEX_NAME = "image_index"

QUARANTINE = pa.schema(
    [
        pa.field("rel_path", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=True),
        pa.field("reason", pa.string(), nullable=False),  # see data/ingest.py QUARANTINE_REASONS
        pa.field("detail", pa.string(), nullable=False),
    ]
)
QUARANTINE_NAME = "quarantine"


def write_table(
    table: pa.Table, schema: pa.Schema, name: str, path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Casts ``table`` to ``schema`` (failing on a missing column) and writes it atomically with
    ``{"pg2.table": name, "pg2.meta": json(metadata)}`` in the schema metadata."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaMismatchError(f"table '{name}' lacks column '{missing[0]}' required by its schema")
    table = table.select(schema.names).cast(schema)
    meta = {b"pg2.table": name.encode(), b"pg2.meta": json.dumps(metadata or {}, sort_keys=True, default=str).encode()}
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def read_table(path: str | Path, schema: pa.Schema, name: str) -> pa.Table:
    """Reads a table written by :func:`write_table`, checking its name, columns and types."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table '{name}' not found (materialize its asset first)")
    table = pq.read_table(path)
    found = (table.schema.metadata or {}).get(b"pg2.table", b"").decode()
    if found != name:
        raise SchemaMismatchError(f"{path}: expected a '{name}' table, found '{found or 'an unknown table'}'")
    for field in schema:
        if field.name not in table.column_names:
            raise SchemaMismatchError(f"{path}: column '{field.name}' ({field.type}) is missing")
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise SchemaMismatchError(f"{path}: column '{field.name}' has type {actual}, expected {field.type}")
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        raise SchemaMismatchError(f"{path}: unexpected column '{extra[0]}' in table '{name}'")
    return table


def table_metadata(table_or_path: pa.Table | str | Path) -> dict[str, Any]:
    """The ``pg2.meta`` dictionary written with a table."""
    schema = table_or_path.schema if isinstance(table_or_path, pa.Table) else pq.read_schema(table_or_path)
    return json.loads((schema.metadata or {}).get(b"pg2.meta", b"{}"))


def joints_yx(table: pa.Table, prefix: str = "") -> np.ndarray:
    """``(N, 18, 2)`` float32 (y, x) of the ``{prefix}keypoints_y`` / ``{prefix}keypoints_x``
    list columns of a keypoint, annotation or manifest table."""
    n = table.num_rows
    ys, xs = (
        np.asarray(table.column(f"{prefix}keypoints_{axis}").combine_chunks().flatten(), np.float32).reshape(
            n, NUM_JOINTS
        )
        for axis in "yx"
    )
    return np.stack([ys, xs], axis=-1)


def _joints(value_type: pa.DataType) -> pa.DataType:
    return pa.list_(value_type, NUM_JOINTS)


KEYPOINTS = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("keypoints_y", _joints(pa.float32()), nullable=False),  # -1 = missing
        pa.field("keypoints_x", _joints(pa.float32()), nullable=False),
        pa.field("scores", _joints(pa.float32()), nullable=False),  # 0 for missing joints
        pa.field("num_visible", pa.int8(), nullable=False),
        pa.field("backend", pa.string(), nullable=False),  # annotations | blazepose
        # False: no pose for this image (not in the annotation file / no person detected /
        # unreadable); its joints are all missing. Flagged, never dropped.
        pa.field("found", pa.bool_(), nullable=False),
        pa.field("note", pa.string(), nullable=True),  # why found is False
    ]
)
KEYPOINTS_NAME = "keypoints"


PAIRS = pa.schema(
    [
        pa.field("pair_id", pa.int64(), nullable=False),  # unique over splits, stable for given params
        pa.field("split", pa.string(), nullable=False),
        pa.field("from_id", pa.string(), nullable=False),  # condition image I_A
        pa.field("to_id", pa.string(), nullable=False),  # target image I_B (its pose is P_B)
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # mined | standard
    ]
)
PAIRS_NAME = "pairs"

UNUSED_STANDARD_PAIRS = pa.schema(
    [
        pa.field("from_id", pa.string(), nullable=False),
        pa.field("to_id", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # see pairs/mining.py UNUSED_REASONS
    ]
)
UNUSED_STANDARD_PAIRS_NAME = "unused_standard_pairs"


MANIFEST = pa.schema(
    [
        pa.field("pair_id", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("from_id", pa.string(), nullable=False),
        pa.field("to_id", pa.string(), nullable=False),
        pa.field("from_path", pa.string(), nullable=False),  # relative to the dataset root (metadata)
        pa.field("to_path", pa.string(), nullable=False),
        pa.field("from_index", pa.int32(), nullable=False),  # row of the image in the split's tensor cache
        pa.field("to_index", pa.int32(), nullable=False),
        # keypoints at the tensor cache's image size, -1 = missing
        pa.field("from_keypoints_y", _joints(pa.float32()), nullable=False),
        pa.field("from_keypoints_x", _joints(pa.float32()), nullable=False),
        pa.field("to_keypoints_y", _joints(pa.float32()), nullable=False),
        pa.field("to_keypoints_x", _joints(pa.float32()), nullable=False),
    ]
)
MANIFEST_NAME = "manifest"
