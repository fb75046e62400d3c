"""Does bf16 autocast keep training quality? Stage 1 trained twice from one seed, fp32 vs bf16.

    make demo                                   # once: the quick twin's manifests + tensor cache
    .venv/bin/python bench/bench_precision.py   # ~10 min on 2 cores; prints one JSON object
    .venv/bin/python bench/bench_precision.py --project /other/clone --steps 300

Both runs use the real training loader over ``assets/manifests`` (same pairs, same order, same
initial weights) and the real stage-1 update (``Stage1.step``); only the autocast dtype differs (fp32 is the
baseline). Afterwards both generators are scored **in fp32** on the same fixed test pairs with the
evaluation code (pose-mask L1, L1, SSIM ``pg2``, mask-SSIM with the loader's PG² pose masks), so any
difference comes from training in
bf16, not from inference precision. The JSON holds the loss curves (every ``--log-every`` steps),
the final scores, the deltas bf16 − fp32 and the images/s of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from pg2_pipeline.evaluate.metrics import l1, ssim
from pg2_pipeline.imaging import to_uint8
from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.models import build_generator
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.runtime import keep_large_allocations
from pg2_pipeline.train.stage import make_optimizer
from pg2_pipeline.train.stage1 import Stage1

ROOT = Path(__file__).resolve().parents[1]


def train(
    loader: PairLoader, steps: int, base_channels: int, lr: float, seed: int, amp: torch.dtype | None, log_every: int
) -> tuple[torch.nn.Module, list[dict], float]:
    torch.manual_seed(seed)
    g1 = build_generator("g1", height=loader.height, width=loader.width, base_channels=base_channels)
    g1 = g1.to(memory_format=torch.channels_last)
    stage = Stage1(g1, make_optimizer(g1.parameters(), lr=lr), amp=amp)
    curve, window = [], []
    started = time.perf_counter()
    for step in range(steps):
        batch = loader.batch(step).to("cpu", memory_format=torch.channels_last)
        window.append(stage.step(batch)["loss_G1"])
        if (step + 1) % log_every == 0 or step + 1 == steps:
            curve.append({"step": step + 1, "loss_G1_mean": round(float(np.mean(window)), 5)})
            window = []
    seconds = time.perf_counter() - started
    return g1, curve, steps * loader.batch_size / seconds


@torch.no_grad()
def score(g1: torch.nn.Module, batches: list[Batch]) -> dict[str, float]:
    g1.eval()
    rows = {"masked_l1": [], "l1": [], "ssim_pg2": [], "mask_ssim_pg2": []}
    for batch in batches:
        out = g1(batch.condition, batch.target_map).float().clamp(-1, 1)
        masked = (out - batch.target).abs().mul(1 + batch.target_mask).mean(dim=(1, 2, 3))
        rows["masked_l1"].append(masked)
        generated, target = to_uint8(out), to_uint8(batch.target)
        rows["l1"].append(l1(generated, target))
        rows["ssim_pg2"].append(ssim(generated, target, "pg2"))
        rows["mask_ssim_pg2"].append(ssim(generated, target, "pg2", mask=batch.target_mask))
    g1.train()
    return {k: round(float(torch.cat(v).mean()), 5) for k, v in rows.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="a project folder whose manifests are materialized")
    parser.add_argument("--steps", type=int, default=400, help="the quick profile's stage-1 steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4, help="the quick profile's stage-1 lr")
    parser.add_argument("--eval-pairs", type=int, default=256)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = ProjectPaths(args.project)
    if not paths.manifest_table("train").is_file():
        raise SystemExit(
            f"no training manifest {paths.manifest_table('train')}: run `make demo` first (or pass --project DIR)"
        )
    torch.set_num_threads(args.threads)
    keep_large_allocations()  # as training does
    torch.use_deterministic_algorithms(True, warn_only=True)

    loader = PairLoader.from_manifest(paths, "train", args.batch, seed=args.seed, flip=True)
    test = PairLoader.from_manifest(paths, "test", 32, shuffle=False)
    test_batches = [test.batch(i) for i in range(max(1, min(args.eval_pairs, len(test.pairs)) // 32))]

    runs = {}
    for name, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        g1, curve, ips = train(loader, args.steps, args.base_channels, args.lr, args.seed, amp, args.log_every)
        runs[name] = {"images_per_s": round(ips, 2), "loss_curve": curve, "test": score(g1, test_batches)}
    delta = {k: round(runs["bf16"]["test"][k] - runs["fp32"]["test"][k], 5) for k in runs["fp32"]["test"]}
    rel = {k: round(delta[k] / abs(runs["fp32"]["test"][k]), 4) for k in delta if runs["fp32"]["test"][k]}
    print(
        json.dumps(
            {
                "benchmark": "bf16 autocast vs fp32, stage 1 (G1) from one seed",
                "manifests": str(paths.asset_dir("manifests")),
                "steps": args.steps,
                "batch": args.batch,
                "base_channels": args.base_channels,
                "lr": args.lr,
                "image_size": [loader.height, loader.width],
                "train_pairs": len(loader.pairs),
                "eval_pairs": sum(len(b) for b in test_batches),
                "threads": args.threads,
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "runs": runs,
                "delta_bf16_minus_fp32": delta,
                "relative_delta": rel,
                "speedup_bf16": round(runs["bf16"]["images_per_s"] / runs["fp32"]["images_per_s"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
