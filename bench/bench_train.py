"""Training throughput of the PG² steps: images/s, model FLOPs per image and achieved FLOP/s.

    .venv/bin/python bench/bench_train.py            # CPU, 2 threads, a few minutes
    .venv/bin/python bench/bench_train.py --quick    # skips C=128 at 256×256, one timed step
    .venv/bin/python bench/bench_train.py --device cuda

For each configuration (resolution × base width C) and stage (``stage1`` = one G1 update,
``stage2`` = frozen G1 forward + one G2 update + one D update) it times the real step functions
of the stage objects (``pg2_pipeline.train.stage1`` / ``stage2``) in three modes: ``fp32``
(contiguous NCHW, the baseline),
``fp32_cl`` (channels_last) and ``bf16_cl`` (bf16 autocast + channels_last). FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` over one whole step (forward + backward of every
network; the optimiser's element-wise work is not counted). Prints one JSON object.

CPU notes: timings are only meaningful on an otherwise idle machine (the JSON records the load
average). glibc serves every tensor above its mmap threshold (≤ 32 MB) with fresh pages, so each
large activation is page-faulted again on every step; running with
``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736`` (or a preloaded
jemalloc/tcmalloc) halved the time of a 64 MB element-wise op here. Training raises both thresholds itself
(``pg2_pipeline.runtime.keep_large_allocations``) and so does this benchmark, unless those variables
are set (theirs win). The JSON records which applied.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.models import G1, G2, Discriminator, count_parameters
from pg2_pipeline.runtime import cpu_model, keep_large_allocations
from pg2_pipeline.train.stage import make_optimizer
from pg2_pipeline.train.stage1 import Stage1
from pg2_pipeline.train.stage2 import Stage2


@dataclass(frozen=True)
class Config:
    name: str
    height: int
    width: int
    base_channels: int
    lambda_l1: float
    d_variant: str
    cpu_batch: int
    cpu_iters: int
    gpu_batch: int  # the paper's batch where it fits the comparison (Market 16)
    in_quick: bool = True
    cpu_modes: tuple[str, ...] | None = None  # None = every mode


CONFIGS = [
    Config("market_C128", 128, 64, 128, 10.0, "market", cpu_batch=2, cpu_iters=2, gpu_batch=16),
    Config("market_C32", 128, 64, 32, 10.0, "market", cpu_batch=8, cpu_iters=3, gpu_batch=16),
    # ~10 s per fp32 step on 2 cores: one timed step, no fp32_cl run.
    Config(
        "deepfashion_C128",
        256,
        256,
        128,
        50.0,
        "deepfashion",
        cpu_batch=1,
        cpu_iters=1,
        gpu_batch=4,
        in_quick=False,
        cpu_modes=("fp32", "bf16_cl"),
    ),
    Config("deepfashion_C32", 256, 256, 32, 50.0, "deepfashion", cpu_batch=2, cpu_iters=1, gpu_batch=8),
]
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")
# mode -> (autocast dtype, memory format)
MODES = {
    "fp32": (None, torch.contiguous_format),
    "fp32_cl": (None, torch.channels_last),
    "bf16_cl": (torch.bfloat16, torch.channels_last),
}


def synthetic_batch(height: int, width: int, batch_size: int, device: torch.device) -> Batch:
    """A seeded random batch: the steps' speed does not depend on what the pixels show."""
    g = torch.Generator().manual_seed(0)
    B, H, W = batch_size, height, width
    return Batch(
        condition=torch.rand(B, 3, H, W, generator=g) * 2 - 1,
        target=torch.rand(B, 3, H, W, generator=g) * 2 - 1,
        target_map=torch.rand(B, 18, H, W, generator=g).round() * 2 - 1,
        target_mask=torch.rand(B, 1, H, W, generator=g).round(),
    ).to(device)


def make_step(cfg: Config, stage: str, device: torch.device) -> tuple[Callable, list]:
    """A closure ``step(batch, autocast)`` running one real training step, and its networks."""
    torch.manual_seed(0)
    g1 = G1(cfg.height, cfg.width, cfg.base_channels).to(device)
    if stage == "stage1":
        runner, nets = Stage1(g1, make_optimizer(g1.parameters())), [g1]
    else:
        g2 = G2(cfg.height, cfg.width, cfg.base_channels).to(device)
        d = Discriminator(cfg.height, cfg.width).to(device)
        opt_g2, opt_d = make_optimizer(g2.parameters()), make_optimizer(d.parameters())
        runner, nets = Stage2(g1, g2, d, opt_g2, opt_d, cfg.lambda_l1, d_variant=cfg.d_variant), [g1, g2, d]

    def step(batch, autocast):
        runner.amp = autocast
        return runner.step(batch)

    return step, nets


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# The timing helpers below are shared with bench/gpu_check.py.


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of one ``call()`` by ``FlopCounterMode`` (forward + backward of every network; the
    optimiser's element-wise work is not counted). The call runs: use it as a warm-up step."""
    counter = FlopCounterMode(display=False)
    with counter:
        call()
    return counter.get_total_flops()


def timed_calls(call: Callable[[], object], iters: int, device: torch.device) -> list[float]:
    """Seconds of each of ``iters`` calls, the device synchronised before and after each (a
    training step ends in a sync anyway: its losses come back as floats)."""
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        call()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def bench_one(
    cfg: Config, stage: str, device: torch.device, batch_size: int, iters: int, warmup: int, modes: list[str]
) -> list[dict]:
    step, nets = make_step(cfg, stage, device)
    base = synthetic_batch(cfg.height, cfg.width, batch_size, device)
    flops = None
    rows = []
    for mode in modes:
        autocast, memory_format = MODES[mode]
        for net in nets:
            net.to(memory_format=memory_format)
        batch = base.to(device, memory_format=memory_format)
        for i in range(warmup):
            if flops is None and i == 0:
                flops = count_flops(lambda: step(batch, autocast))
            else:
                step(batch, autocast)
        last = {}
        times = timed_calls(lambda: last.update(losses=step(batch, autocast)), iters, device)
        losses = last["losses"]
        seconds = min(times)  # best of n: the least disturbed by other processes
        rows.append(
            {
                "config": cfg.name,
                "stage": stage,
                "mode": mode,
                "height": cfg.height,
                "width": cfg.width,
                "base_channels": cfg.base_channels,
                "batch": batch_size,
                "timed_iters": iters,
                "s_per_iter": round(seconds, 4),
                "s_per_iter_mean": round(sum(times) / len(times), 4),
                "images_per_s": round(batch_size / seconds, 3),
                "gflop_per_image": round(flops / batch_size / 1e9, 2),
                "achieved_gflop_per_s": round(flops / seconds / 1e9, 1),
                "finite": all(v == v and abs(v) != float("inf") for v in losses.values()),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (set_num_threads)")
    parser.add_argument("--quick", action="store_true", help="skip C=128 at 256x256, 1 timed iter")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations (override)")
    parser.add_argument("--batch", type=int, default=None, help="batch size for every config")
    parser.add_argument("--configs", default=None, help="comma list of config names")
    parser.add_argument("--modes", default=None, help="comma list of " + ",".join(MODES))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    malloc_tuned = keep_large_allocations()  # what train_stage does
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(args.threads)
    modes = args.modes.split(",") if args.modes else list(MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; known: {', '.join(MODES)}")
    configs = [c for c in CONFIGS if c.in_quick or not args.quick]
    if args.configs:
        wanted = args.configs.split(",")
        configs = [c for c in CONFIGS if c.name in wanted]
        if len(configs) != len(wanted):
            raise SystemExit(f"unknown configs in {wanted}; known: {[c.name for c in CONFIGS]}")

    started, load_start = time.perf_counter(), os.getloadavg()
    results = []
    for cfg in configs:
        batch_size = args.batch or (cfg.gpu_batch if on_gpu else cfg.cpu_batch)
        iters = args.iters or (10 if on_gpu else 1 if args.quick else cfg.cpu_iters)
        cfg_modes = modes if on_gpu or cfg.cpu_modes is None or args.modes else [m for m in modes if m in cfg.cpu_modes]
        warmup = 3 if on_gpu else 1
        for stage in ("stage1", "stage2"):
            results += bench_one(cfg, stage, device, batch_size, iters, warmup, cfg_modes)

    speedups = {}
    for row in results:
        if row["mode"] != "fp32" and "fp32" in modes:
            base = next(
                r
                for r in results
                if r["config"] == row["config"] and r["stage"] == row["stage"] and r["mode"] == "fp32"
            )
            speedups[f"{row['config']}/{row['stage']}/{row['mode']}"] = round(base["s_per_iter"] / row["s_per_iter"], 2)
    params = {
        c.name: {
            "g1": count_parameters(G1(c.height, c.width, c.base_channels)),
            "g2": count_parameters(G2(c.height, c.width, c.base_channels)),
            "d": count_parameters(Discriminator(c.height, c.width)),
        }
        for c in configs
    }
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(device) if on_gpu else cpu_model(),
                "torch": torch.__version__,
                "threads": None if on_gpu else torch.get_num_threads(),
                # CPU timings are only comparable on an otherwise idle machine: the 1-minute load
                # average before and after, and the glibc settings that avoid page-faulting every
                # large tensor (module docstring).
                "load_average_1min": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
                "malloc_env": {k: os.environ[k] for k in MALLOC_ENV if k in os.environ},
                "malloc_thresholds_raised": malloc_tuned,
                "baseline": "fp32 (contiguous NCHW); speedup = fp32 s/iter / mode s/iter",
                "timing": "s_per_iter = best of timed_iters after 1 (GPU 3) untimed warm-up steps",
                "parameters": params,
                "results": results,
                "speedup_vs_fp32": speedups,
                "total_s": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
