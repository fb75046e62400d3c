"""Ingest: index a dataset folder in the real Market-1501 or DeepFashion In-shop layout.

One code path serves the real datasets and the synthetic twin (which uses the same layouts):

* Market-1501: ``bounding_box_train/`` (split train) and ``bounding_box_test/`` (split test),
  flat folders of ``0002_c1s1_000451_03.jpg`` files. Persons ``-1`` (distractors) and ``0000``
  (junk) are excluded and counted. ``query/`` and the other folders are not used: the standard
  annotations and test pairs cover the two bounding-box folders only.
* DeepFashion In-shop: ``img/<MEN|WOMEN>/<Category>/id_XXXXXXXX/NN_V_view.jpg`` plus the split
  file ``Eval/list_eval_partition.txt`` (``train`` → train; ``query``/``gallery`` → test).

Every file is read once: name checked, decoded (truncation detected), size checked and hashed.
Bad files go to the quarantine table with a reason; nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from pg2_pipeline import fileio, summaries, viz
from pg2_pipeline.data.names import (
    MARKET_SPLIT_DIRS,
    BadNameError,
    parse_fashion_path,
    parse_market_name,
)
from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.progress import bar as progress_bar
from pg2_pipeline.schemas import IMAGE_INDEX, IMAGE_INDEX_NAME, QUARANTINE, QUARANTINE_NAME, write_table
from pg2_pipeline.summaries import ImageIndexSummary

FASHION_PARTITION = Path("Eval") / "list_eval_partition.txt"
FASHION_STATUS_TO_SPLIT = {"train": "train", "query": "test", "gallery": "test"}

QUARANTINE_REASONS = {
    "bad_name": "file name does not follow the dataset's naming scheme",
    "empty_file": "zero-byte file",
    "not_an_image": "not a JPEG/PNG image",
    "unreadable": "image data cannot be decoded",
    "truncated": "image data ends early",
    "wrong_size": "image size differs from the dataset's standard size",
    "not_in_split_file": "DeepFashion image not listed in Eval/list_eval_partition.txt",
    "duplicate_id": "the same image id appears twice",
}


class DatasetFolderError(FileNotFoundError):
    """The dataset folder is missing, empty or lacks a required part of its layout."""


@dataclass(frozen=True)
class Candidate:
    rel_path: str
    split: str | None  # None when the split cannot be known (DeepFashion file not in the split file)


@dataclass(frozen=True)
class IngestResult:
    index: pa.Table  # IMAGE_INDEX rows, sorted by (split, image_id)
    quarantine: pa.Table  # QUARANTINE rows, sorted by rel_path
    excluded: dict[str, int]  # Market: {'distractor': n, 'junk': n}
    missing_from_disk: int  # DeepFashion: split-file entries without a file

    @property
    def quarantine_fraction(self) -> float:
        total = self.index.num_rows + self.quarantine.num_rows
        return self.quarantine.num_rows / total if total else 0.0

    def summary(self) -> dict:
        splits = self.index.column("split").to_pylist()
        persons = self.index.column("person_id").to_pylist()
        ids_per_split: dict[str, set] = {}
        for s, p in zip(splits, persons):
            ids_per_split.setdefault(s, set()).add(p)
        return {
            "images": self.index.num_rows,
            "images_per_split": dict(sorted(Counter(splits).items())),
            "identities_per_split": {s: len(v) for s, v in sorted(ids_per_split.items())},
            "excluded": self.excluded,
            "quarantined": self.quarantine.num_rows,
            "quarantined_by_reason": dict(sorted(Counter(self.quarantine.column("reason").to_pylist()).items())),
            "quarantine_fraction": round(self.quarantine_fraction, 6),
            "missing_from_disk": self.missing_from_disk,
        }


# ---------------------------------------------------------------------------------- scanning


def scan_dataset(root: Path, dataset: str) -> tuple[list[Candidate], int]:
    """The files to index and, for DeepFashion, how many split-file entries have no file."""
    if not root.is_dir():
        raise DatasetFolderError(f"dataset folder {root} does not exist (params: image_index.root)")
    if dataset == "market":
        return _scan_market(root), 0
    if dataset == "deepfashion":
        return _scan_fashion(root)
    raise ValueError(f"unknown dataset '{dataset}' (expected market or deepfashion)")


def _scan_market(root: Path) -> list[Candidate]:
    for folder in MARKET_SPLIT_DIRS.values():
        if not (root / folder).is_dir():
            raise DatasetFolderError(f"{root / folder} does not exist: a Market-1501 folder needs {folder}/")
    found = []
    for split, folder in MARKET_SPLIT_DIRS.items():
        path = root / folder
        files = sorted(e.name for e in os.scandir(path) if e.is_file())
        if not files:
            raise DatasetFolderError(f"{path} is empty: expected Market-1501 images")
        found += [Candidate(f"{folder}/{name}", split) for name in files]
    return found


def _scan_fashion(root: Path) -> tuple[list[Candidate], int]:
    img = root / "img"
    if not img.is_dir():
        raise DatasetFolderError(f"{img} does not exist: a DeepFashion In-shop folder needs img/")
    partition = root / FASHION_PARTITION
    if not partition.is_file():
        raise DatasetFolderError(f"{partition} does not exist: DeepFashion needs the In-shop split file")
    split_of = _read_partition(partition)
    files = sorted(str(p.relative_to(root)).replace(os.sep, "/") for p in img.rglob("*") if p.is_file())
    if not files:
        raise DatasetFolderError(f"{img} is empty: expected DeepFashion images")
    on_disk = set(files)
    missing = sum(1 for name in split_of if name not in on_disk)
    return [Candidate(f, split_of.get(f)) for f in files], missing


def _read_partition(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise DatasetFolderError(f"{path}: expected a count line and a header line")
    split_of = {}
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[2] not in FASHION_STATUS_TO_SPLIT:
            raise DatasetFolderError(
                f"{path}:{lineno}: expected 'image_name item_id train|query|gallery', got {line!r}"
            )
        split_of[parts[0]] = FASHION_STATUS_TO_SPLIT[parts[2]]
    return split_of


# ---------------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class _Task:
    root: str
    dataset: str
    check_size: bool


def _check_file(task: _Task, cand: Candidate) -> tuple[str, dict]:
    """('index' | 'quarantine' | 'excluded', row) for one file."""
    spec = dataset_spec(task.dataset)
    name = cand.rel_path.rsplit("/", 1)[-1]

    def bad(reason: str, detail: str) -> tuple[str, dict]:
        return "quarantine", {"rel_path": cand.rel_path, "split": cand.split, "reason": reason, "detail": detail}

    camera = view = None
    try:
        if task.dataset == "market":
            parsed = parse_market_name(name)
            if parsed.is_excluded:
                kind = "distractor" if parsed.person_id == "-1" else "junk"
                return "excluded", {"kind": kind, "rel_path": cand.rel_path}
            image_id, person_id, camera = name, parsed.person_id, parsed.camera
        else:
            parsed = parse_fashion_path(cand.rel_path)
            image_id, person_id, view = parsed.flat, parsed.person_id, parsed.view
    except BadNameError as exc:
        return bad("bad_name", str(exc))
    if cand.split is None:
        return bad("not_in_split_file", f"{cand.rel_path} is not listed in {FASHION_PARTITION}")

    data = (Path(task.root) / cand.rel_path).read_bytes()
    if not data:
        return bad("empty_file", "0 bytes")
    if not (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"):
        return bad("not_an_image", f"starts with {data[:8]!r}, not a JPEG or PNG signature")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decodes fully: raises on truncated or corrupt data
            width, height = im.size
    except UnidentifiedImageError:
        return bad("unreadable", "the image data cannot be identified or decoded")
    except SyntaxError as exc:  # PIL's parsers raise it for corrupt headers
        return bad("unreadable", str(exc))
    except OSError as exc:
        reason = "truncated" if "truncated" in str(exc) else "unreadable"
        return bad(reason, str(exc))
    if task.check_size and (height, width) != (spec.height, spec.width):
        return bad("wrong_size", f"{height}x{width} (HxW), expected {spec.height}x{spec.width}")
    return "index", {
        "image_id": image_id,
        "rel_path": cand.rel_path,
        "dataset": task.dataset,
        "split": cand.split,
        "person_id": person_id,
        "camera": camera,
        "view": view,
        "height": height,
        "width": width,
        "bytes": len(data),
        "content_hash": hashlib.sha256(data).hexdigest(),
    }


def _check_chunk(args: tuple[_Task, list[Candidate]]) -> list[tuple[str, dict]]:
    task, chunk = args
    return [_check_file(task, c) for c in chunk]


def ingest(
    root: Path, dataset: str, *, check_size: bool = True, workers: int = 1, progress: bool = True
) -> IngestResult:
    """Indexes ``root``; see the module docstring."""
    candidates, missing = scan_dataset(root, dataset)
    task = _Task(str(root), dataset, check_size)
    chunk = 512
    jobs = [(task, candidates[i : i + chunk]) for i in range(0, len(candidates), chunk)]
    bar = progress_bar(len(candidates), "image_index", "img", enabled=progress)
    results: list[tuple[str, dict]] = []
    if workers > 1 and len(jobs) > 1:
        with get_context("spawn").Pool(workers) as pool:
            for part in pool.imap(_check_chunk, jobs):
                results += part
                bar.update(len(part))
    else:
        for job in jobs:
            part = _check_chunk(job)
            results += part
            bar.update(len(part))
    bar.close()

    rows = [r for kind, r in results if kind == "index"]
    quarantined = [r for kind, r in results if kind == "quarantine"]
    excluded = Counter(r["kind"] for kind, r in results if kind == "excluded")

    # The same image id twice (e.g. a Market file in both bounding-box folders): keep neither.
    counts = Counter(r["image_id"] for r in rows)
    dupes = {i for i, n in counts.items() if n > 1}
    if dupes:
        for r in rows:
            if r["image_id"] in dupes:
                quarantined.append(
                    {
                        "rel_path": r["rel_path"],
                        "split": r["split"],
                        "reason": "duplicate_id",
                        "detail": f"image id {r['image_id']} appears {counts[r['image_id']]} times",
                    }
                )
        rows = [r for r in rows if r["image_id"] not in dupes]

    rows.sort(key=lambda r: (r["split"], r["image_id"]))
    quarantined.sort(key=lambda r: r["rel_path"])
    index = pa.Table.from_pylist(rows, schema=IMAGE_INDEX)
    quarantine = pa.Table.from_pylist(quarantined, schema=QUARANTINE)
    excluded_counts = {k: excluded.get(k, 0) for k in ("distractor", "junk")} if dataset == "market" else {}
    return IngestResult(index, quarantine, excluded_counts, missing)


# ---------------------------------------------------------------------------------- the stage


def build_image_index(params, paths, progress: bool = True) -> ImageIndexSummary:
    """The ``image_index`` stage: ingest ``params.image_index.root`` and write the index, the
    quarantine table, a preview and ``summary.json`` under ``assets/image_index/``."""
    cfg = params.image_index
    root = paths.resolve(cfg.root)
    start = time.perf_counter()
    result = ingest(root, params.base.dataset, check_size=cfg.check_size, workers=cfg.workers, progress=progress)
    counts = result.summary()
    if result.index.num_rows == 0:
        raise DatasetFolderError(f"{root}: no usable images (quarantined: {counts['quarantined_by_reason']})")
    # content only (no params hash): a rerun that changes nothing leaves the table byte-identical,
    # so DVC does not rerun the stages that read it
    meta = {"dataset": params.base.dataset, **{k: counts[k] for k in ("images_per_split", "quarantined")}}
    write_table(result.index, IMAGE_INDEX, IMAGE_INDEX_NAME, paths.image_index_table, meta)
    write_table(result.quarantine, QUARANTINE, QUARANTINE_NAME, paths.image_index_quarantine, meta)
    fileio.write_png(paths.image_index_preview, _preview(result.index, root))
    summary = ImageIndexSummary(
        dataset=params.base.dataset,
        root=str(root),
        **counts,
        max_quarantine_fraction=cfg.max_quarantine_fraction,
        seconds=round(time.perf_counter() - start, 2),
        params_hash=params.section_hash("image_index"),
    )
    summaries.write(paths.summary("image_index"), summary)
    return summary


def _preview(index: pa.Table, root: Path, per_split: int = 8) -> np.ndarray:
    """A few images of each split, labelled with split and identity, for the Dagster UI."""
    tiles = []
    rows = index.select(["rel_path", "split", "person_id"]).to_pylist()
    for split in sorted({r["split"] for r in rows}):
        chosen = [r for r in rows if r["split"] == split]
        step = max(1, len(chosen) // per_split)
        for r in chosen[::step][:per_split]:
            im = viz.read_rgb(root / r["rel_path"])
            scale = max(1, 192 // im.shape[0])
            tiles.append(viz.label(viz.upscale(im, scale) if scale > 1 else im, f"{split} {r['person_id'][-8:]}"))
    shape = tiles[0].shape
    tiles = [t if t.shape == shape else np.zeros(shape, np.uint8) for t in tiles]
    return viz.grid(tiles, cols=per_split)
