"""Writes the twin dataset folder (``build_twin``): real layout, JPEG files, split file, contact
sheet, summary.

The stage owns ``assets/twin/dataset``: it is deleted first, so a rerun with other params never leaves
stale images behind. Images are rendered by ``twin.workers`` processes in chunks; each file depends
only on (params, image name), so the bytes do not depend on the worker count or the schedule.
"""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2

from pg2_pipeline import summaries
from pg2_pipeline.config import Params
from pg2_pipeline.data.names import parse_fashion_flat
from pg2_pipeline.data.twin.plan import DISTRACTOR_ID, JUNK_ID, TwinImage, plan_twin
from pg2_pipeline.data.twin.render import render_twin_image
from pg2_pipeline.data.twin.sheet import contact_sheet
from pg2_pipeline.fileio import write_bytes, write_png, write_text
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.progress import bar as progress_bar
from pg2_pipeline.summaries import TwinSummary

CHUNK = 128  # most images per task: amortises pickling; smaller when there are few images
PARTITION_FILE = "Eval/list_eval_partition.txt"
# In-shop's evaluation_status for the twin's splits (its test images form the gallery).
FASHION_STATUS = {"train": "train", "test": "gallery"}


def build_twin(params: Params, paths: ProjectPaths, progress: bool = True) -> TwinSummary:
    """Renders the planned twin into ``assets/twin/dataset`` and returns the summary it writes."""
    start = time.perf_counter()
    dataset, seed, twin = params.base.dataset, params.base.seed, params.twin
    if twin.workers < 1:
        raise ValueError(f"params twin.workers: must be >= 1, got {twin.workers}")
    items = plan_twin(params)
    root = paths.twin_dataset
    if root.exists():
        shutil.rmtree(root)
    for folder in sorted({(root / it.rel_path).parent for it in items}):
        folder.mkdir(parents=True, exist_ok=True)

    render = functools.partial(_render_chunk, dataset=dataset, seed=seed, quality=twin.jpeg_quality, root=str(root))
    size = max(1, min(CHUNK, math.ceil(len(items) / (4 * twin.workers))))  # >= 4 tasks per worker
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    bar = progress_bar(len(items), f"twin {dataset}", "img", enabled=progress)
    with bar:
        for done in _run(render, chunks, twin.workers):
            bar.update(done)

    if dataset == "deepfashion":
        write_text(root / PARTITION_FILE, fashion_partition(items))
    write_png(paths.twin_contact_sheet, contact_sheet(items, dataset, seed, twin.contact_sheet_identities))
    seconds = time.perf_counter() - start
    summary = _summary(params, items, seconds)
    summaries.write(paths.summary("twin"), summary)
    return summary


def _run(render, chunks: list[list[TwinImage]], workers: int) -> Iterator[int]:
    workers = min(workers, len(chunks))
    if workers <= 1:
        for chunk in chunks:
            yield render(chunk)
        return
    # spawn: safe under any parent (Dagster, threads). An executor rather than mp.Pool: a worker
    # that dies (or cannot start) fails the build instead of hanging it.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        for future in as_completed([pool.submit(render, chunk) for chunk in chunks]):
            yield future.result()


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def _render_chunk(chunk: list[TwinImage], dataset: str, seed: int, quality: int, root: str) -> int:
    base = Path(root)
    for item in chunk:
        write_bytes(base / item.rel_path, render_twin_image(item, dataset, seed, quality))
    return len(chunk)


def fashion_partition(items: list[TwinImage]) -> str:
    """In-shop ``Eval/list_eval_partition.txt``: image count, header, then
    ``img/... id_XXXXXXXX status`` per image."""
    rows = sorted(items, key=lambda it: it.rel_path)
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    for it in rows:
        lines.append(f"{it.rel_path} id_{parse_fashion_flat(it.image_id).item_id} {FASHION_STATUS[it.split]}")
    return "\n".join(lines) + "\n"


def _summary(params: Params, items: list[TwinImage], seconds: float) -> TwinSummary:
    images = {split: sum(1 for it in items if it.split == split) for split in ("train", "test")}
    identities = {
        split: len({it.person_id for it in items if it.split == split and it.is_identity})
        for split in ("train", "test")
    }
    return TwinSummary(
        dataset=params.base.dataset,
        profile=params.base.profile,
        seed=params.base.seed,
        images=images,
        identities=identities,
        distractor_images=sum(1 for it in items if it.person_id == DISTRACTOR_ID),
        junk_images=sum(1 for it in items if it.person_id == JUNK_ID),
        total_images=len(items),
        seconds=round(seconds, 3),
        images_per_second=round(len(items) / seconds, 1) if seconds > 0 else None,
    )
