"""Throughput of the batched pose maps + masks against the per-sample numpy reference.

Run: ``.venv/bin/python bench/bench_pose_maps.py`` — prints one JSON object. Poses are the
packaged real annotations (Market train at 128×64, DeepFashion test at 256×256), shuffled and
cycled through in batches. A "pair" is one pose's (18, H, W) map plus its (1, H, W) mask.

Every configuration (size, threads, batch size) is timed in short repeats, interleaved in
rounds; rates are the median and the best repeat. Target: a median >= 20,000 pairs/s with 2
CPU threads at 128×64, at the loader's batch sizes (16, PG²'s Market batch, and 64); those
configurations are timed first, in a short phase of their own.

To read the numbers on a shared machine: ``cpu_share_of_other_processes``, in the target's
phase and in the whole run (above a few percent the run was disturbed: another process holding
a core stalls every 2-thread parallel region by milliseconds, so 2-thread rates collapse and
the best repeat is the one to read, while 1-thread rates barely move), and ``alloc_floor``: the
rate of merely allocating the zeroed maps output. A buffer above glibc's 32 MB mmap ceiling (128×64
at batch 256, 256×256
from batch 32) comes back as fresh pages on every call, and faulting them in bounds those
batches whatever the drawing costs.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # for tests.pose.reference_maps (tests/ is a plain folder)
    sys.path.insert(0, str(ROOT))

from pg2_pipeline.data.annotations import keypoints_array, standard_file  # noqa: E402
from pg2_pipeline.pose.maps import pose_maps_and_masks  # noqa: E402
from pg2_pipeline.skeleton import NUM_JOINTS  # noqa: E402
from tests.pose import reference_maps  # noqa: E402

TARGET_PAIRS_PER_S = 20_000
TARGET_BATCH_SIZES = ("16", "64")
THREADS = 2
BATCH_SIZES = (16, 64, 256)
CUDA_BATCH_SIZES = (16, 64, 256, 1024)
SIZES = {"128x64": ((128, 64), "market_annotation_train"), "256x256": ((256, 256), "fashion_annotation_test")}
REPEAT_SECONDS = 0.2
ROUNDS = 6
REFERENCE_POSES = {"128x64": 150, "256x256": 40}


class _Batches:
    """``step()`` draws the next batch of poses (cycling) at one image size."""

    def __init__(self, poses: torch.Tensor, size: tuple[int, int], batch: int):
        self.poses, self.size, self.batch, self.start = poses, size, batch, 0

    def __call__(self) -> None:
        if self.start + self.batch > len(self.poses):
            self.start = 0
        pose_maps_and_masks(self.poses[self.start : self.start + self.batch], *self.size)
        self.start += self.batch


def _repeat(step, batch: int, sync=lambda: None) -> float:
    """Items/s of ``step()`` (``batch`` items each) run for REPEAT_SECONDS."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < REPEAT_SECONDS:
        step()
        sync()
        done += batch
    return done / elapsed


def _summary(rates: list[float]) -> dict:
    return {"median": round(statistics.median(rates)), "best": round(max(rates))}


class _OtherLoad:
    """Share of the machine's CPU time that other processes used while we ran (Linux
    /proc/stat), to tell an undisturbed run from one that shared the cores."""

    def __enter__(self):
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc):
        self.end = self._snapshot()

    @staticmethod
    def _snapshot():
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + fields[4]  # idle + iowait, in clock ticks
        ours = sum(os.times()[:2]) * os.sysconf("SC_CLK_TCK")
        return sum(fields), idle, ours

    def share(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        total, idle, ours = (e - s for e, s in zip(self.end, self.start))
        return round(max(0.0, (total - idle - ours) / total), 3) if total else None


def _reference(poses: np.ndarray, size: tuple[int, int]) -> tuple[float, bool]:
    start = time.perf_counter()
    maps, masks = reference_maps.pose_maps_and_masks(poses, *size)
    rate = len(poses) / (time.perf_counter() - start)
    got_maps, got_masks = pose_maps_and_masks(torch.from_numpy(poses), *size)
    same = bool((got_maps.numpy() == maps.astype(bool)).all() and (got_masks.numpy() == masks.astype(bool)).all())
    return rate, same


def _timed(steps: dict, rates: dict) -> None:
    """ROUNDS interleaved repeats of every step, appended to ``rates``."""
    for round_ in range(ROUNDS):
        for (name, what, threads, b), step in steps.items():
            torch.set_num_threads(threads)
            if round_ == 0:  # warm-up: tables, allocator, caches
                for _ in range(3):
                    step()
            rates[name, what, threads, b].append(_repeat(step, b))
    torch.set_num_threads(THREADS)


def _cpu(poses: dict[str, np.ndarray]) -> tuple[dict, float | None]:
    """Rates per size; the target's configurations go first, in a short phase of their own
    (a quiet window on a shared machine is more likely to hold it), whose other-process CPU
    share is returned."""
    steps = {}
    for name, (size, _) in SIZES.items():
        shuffled = torch.from_numpy(poses[name][np.random.default_rng(0).permutation(len(poses[name]))])
        for b in BATCH_SIZES:
            numel = b * NUM_JOINTS * size[0] * size[1]
            steps[name, "batched", THREADS, b] = _Batches(shuffled, size, b)
            steps[name, "batched", 1, b] = _Batches(shuffled, size, b)
            steps[name, "alloc_floor", THREADS, b] = lambda n=numel: torch.zeros(n, dtype=torch.bool)
    target = {("128x64", "batched", THREADS, int(b)) for b in TARGET_BATCH_SIZES}
    rates = defaultdict(list)
    with _OtherLoad() as target_load:
        _timed({k: v for k, v in steps.items() if k in target}, rates)
    _timed({k: v for k, v in steps.items() if k not in target}, rates)

    out = {}
    for name, (size, stem) in SIZES.items():
        entry: dict = {"poses": stem}
        for what, threads in (("batched", THREADS), ("batched", 1), ("alloc_floor", THREADS)):
            key = f"{what}_{threads}_thread{'s' if threads > 1 else ''}"
            entry[key] = {str(b): _summary(rates[name, what, threads, b]) for b in BATCH_SIZES}
        ref_rate, same = _reference(poses[name][: REFERENCE_POSES[name]], size)
        entry["reference_per_sample_1_thread"] = round(ref_rate, 1)
        entry["speed_up_best_batch_median"] = {
            key: round(max(r["median"] for r in entry[key].values()) / ref_rate, 1)
            for key in (f"batched_{THREADS}_threads", "batched_1_thread")
        }
        entry["matches_reference"] = same
        out[name] = entry
    return out, target_load.share()


def main() -> dict:
    result: dict = {
        "benchmark": "pose_maps_and_masks",
        "unit": "map+mask pairs per second",
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "target": {
            "pairs_per_s": TARGET_PAIRS_PER_S,
            "size": "128x64",
            "threads": THREADS,
            "batch_sizes": list(TARGET_BATCH_SIZES),
            "on": "median",
        },
    }
    poses = {name: keypoints_array(standard_file(stem)) for name, (_, stem) in SIZES.items()}
    with _OtherLoad() as load:
        result["cpu"], target_share = _cpu(poses)
    result["cpu_share_of_other_processes"] = {"target_phase": target_share, "whole_run": load.share()}
    market = result["cpu"]["128x64"][f"batched_{THREADS}_threads"]
    result["target_met_by_batch_size"] = {b: r["median"] >= TARGET_PAIRS_PER_S for b, r in market.items()}
    result["target_met"] = all(result["target_met_by_batch_size"][b] for b in TARGET_BATCH_SIZES)
    # What the code does when nothing else ran: read this one when the run was disturbed.
    result["target_met_on_best_repeat"] = all(market[b]["best"] >= TARGET_PAIRS_PER_S for b in TARGET_BATCH_SIZES)

    if torch.cuda.is_available():
        sync = torch.cuda.synchronize
        result["cuda"] = {"device": torch.cuda.get_device_name(0)}
        for name, (size, _) in SIZES.items():
            yx = torch.from_numpy(poses[name]).cuda()
            rates = {}
            for b in CUDA_BATCH_SIZES:
                step = _Batches(yx, size, b)
                for _ in range(3):
                    step()
                sync()
                rates[str(b)] = _summary([_repeat(step, b, sync) for _ in range(ROUNDS)])
            result["cuda"][name] = rates
    else:
        result["cuda"] = "skipped: no CUDA device"
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
