#!/usr/bin/env python
"""Rebuilds the packaged standard files (pg2_pipeline/data/standard/*.parquet) from the
published CSV files of the pose-transfer community (Deformable GAN annotations and test pairs).

    python scripts/build_standard_files.py SOURCE_DIR

SOURCE_DIR holds market-annotation-{train,test}.csv, market-pairs-test.csv,
fasion-annotation-test.csv (historical spelling) and fashion-pairs-test.csv. Each file is parsed
and validated (a malformed line stops the build, naming file and line) and written as a
zstd-compressed Parquet table whose metadata records the source file name and its SHA-256.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pyarrow.parquet as pq

from pg2_pipeline.data.annotations import read_annotation_file, read_pairs_file
from pg2_pipeline.fileio import atomic_path

SOURCES = {
    "market_annotation_train": ("market-annotation-train.csv", read_annotation_file),
    "market_annotation_test": ("market-annotation-test.csv", read_annotation_file),
    "market_pairs_test": ("market-pairs-test.csv", read_pairs_file),
    "fashion_annotation_test": ("fasion-annotation-test.csv", read_annotation_file),
    "fashion_pairs_test": ("fashion-pairs-test.csv", read_pairs_file),
}
OUT_DIR = Path(__file__).resolve().parent.parent / "pg2_pipeline" / "data" / "standard"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    src = Path(argv[0])
    for stem, (filename, reader) in SOURCES.items():
        path = src / filename
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 1
        table = reader(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        table = table.replace_schema_metadata(
            {"source_file": filename, "source_sha256": digest, "rows": str(table.num_rows)}
        )
        out = OUT_DIR / f"{stem}.parquet"
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp, compression="zstd", compression_level=19)
        print(f"{out.relative_to(OUT_DIR.parent.parent.parent)}: {table.num_rows} rows from {filename}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
