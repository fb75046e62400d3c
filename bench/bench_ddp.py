"""Data-parallel training throughput: images/s of 1 vs N processes at the same global batch, and
the share of a step spent communicating.

    .venv/bin/python bench/bench_ddp.py                       # CPU: 1 vs 2 processes (gloo), ~2 min
    .venv/bin/python bench/bench_ddp.py --device cuda --procs 1,2,4,8   # on a GPU machine (nccl)

Each configuration runs the real stage-1 update (``Stage1.step``, G1 at ``--base-channels``) on a
synthetic batch under ``torchrun``: the global batch is split over the processes as training
does. Per process count it reports images/s (global batch / step time), the scaling efficiency
against one process, and the communication share: 1 − (step time with DDP's gradient all-reduce
skipped, ``no_sync``) / (step time with it). On one CPU the processes share the cores, so CPU
"scaling" measures overhead, not speed-up; the GPU numbers are the ones that matter (run it where
a GPU is lent; otherwise the JSON says they are unmeasured). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """One torchrun process: time steps with and without the gradient all-reduce."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from pg2_pipeline.distributed import Dist
    from pg2_pipeline.inputs.batch import Batch
    from pg2_pipeline.models import G1
    from pg2_pipeline.train.stage import make_optimizer
    from pg2_pipeline.train.stage1 import Stage1

    me = Dist.from_env()
    device = me.device(torch.device(args.device))
    me.init("auto", device)
    torch.manual_seed(0)
    local = args.batch // me.world
    h, w = 128, 64
    g1 = G1(h, w, args.base_channels).to(device)
    stage = Stage1(g1, make_optimizer(g1.parameters(), fused=device.type != "mps"))
    ids = [device.index] if device.type == "cuda" else None
    ddp = DistributedDataParallel(g1, device_ids=ids)
    stage._run["g1"] = ddp
    gen = torch.Generator().manual_seed(me.rank)
    batch = Batch(
        torch.rand(local, 3, h, w, generator=gen) * 2 - 1,
        torch.rand(local, 3, h, w, generator=gen) * 2 - 1,
        torch.rand(local, 18, h, w, generator=gen).round() * 2 - 1,
        torch.rand(local, 1, h, w, generator=gen).round(),
    ).to(device)

    def timed(sync: bool) -> float:
        for _ in range(args.warmup):
            stage.step(batch)
        times = []
        for _ in range(args.iters):
            if device.type == "cuda":
                torch.cuda.synchronize()
            dist.barrier()
            start = time.perf_counter()
            if sync:
                stage.step(batch)
            else:
                with ddp.no_sync():
                    stage.step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        t = torch.tensor(sorted(times)[len(times) // 2], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
        return float(t)

    with_comm, without = timed(True), timed(False)
    if me.is_main:
        Path(args.out).write_text(json.dumps({"step_s": with_comm, "step_no_allreduce_s": without}))
    me.close()


def measure(procs: int, args, out: Path) -> dict:
    threads = max(1, (os.cpu_count() or 1) // procs) if args.device == "cpu" else 1
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={procs}",
        __file__,
        "--worker",
        "--device",
        args.device,
        "--batch",
        str(args.batch),
        "--base-channels",
        str(args.base_channels),
        "--iters",
        str(args.iters),
        "--warmup",
        str(args.warmup),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    r = json.loads(out.read_text())
    return {
        "processes": procs,
        "threads_per_process": threads,
        "step_s": round(r["step_s"], 4),
        "images_per_s": round(args.batch / r["step_s"], 2),
        "communication_share": round(max(0.0, 1 - r["step_no_allreduce_s"] / r["step_s"]), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--procs", default=None, help="comma-separated process counts (default: 1,2 on CPU; 1..GPUs on CUDA)"
    )
    parser.add_argument("--batch", type=int, default=16, help="global batch")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    procs = (
        [int(p) for p in args.procs.split(",")]
        if args.procs
        else ([1, 2] if args.device == "cpu" else [1, *range(2, gpus + 1)])
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in procs:
            rows.append(measure(n, args, Path(tmp) / f"{n}.json"))
    base = rows[0]["images_per_s"]
    for r in rows:
        r["scaling_efficiency"] = round(r["images_per_s"] / (base * r["processes"]), 3)
    print(
        json.dumps(
            {
                "benchmark": "DDP stage-1 step, 1 vs N processes at one global batch",
                "device": args.device,
                "global_batch": args.batch,
                "base_channels": args.base_channels,
                "image_size": [128, 64],
                "cpu_count": os.cpu_count(),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "results": rows,
                "gpu_scaling": "measured"
                if args.device == "cuda"
                else "unmeasured: no GPU here (run with --device cuda on a GPU machine)",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
