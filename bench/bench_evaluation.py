"""The quick evaluation with every metric, fast path against the serial path, and the full
12,000-pair Market evaluation's estimated time from those figures.

Run: ``.venv/bin/python bench/bench_evaluation.py [--project DIR] [--pairs 200] [--real 200]``
— prints one JSON object:

* ``inception``: images/s of the FID network as shipped (TorchScript) and of the folded port
  (evaluate/inception_net.py), interleaved, and how far their features differ;
* ``runs``: the evaluation (params evaluation, ``--pairs`` test pairs × stage2 / stage1 / copy,
  SSIM ×3 protocols, mask-SSIM, PSNR, L1, LPIPS, FID against ``--real`` training images, PCKh
  with BlazePose on the outputs and the real targets) timed end to end, three ways in one run:
  ``serial`` (``stage.SERIAL``: the evaluation as it was — TorchScript Inception, BlazePose in
  the main process, no cache, 2048² square roots), ``fast_cold`` (the defaults with an empty
  feature cache) and ``fast_warm`` (the same again: the real set's statistics, the copy
  baseline's features and the real images' poses come from the cache); pairs/s and seconds per
  part (this process's wall clock; BlazePose runs in a worker meanwhile, ``blazepose_wait`` is
  what is left at the end);
* ``agreement``: the metrics of the three runs (PCKh and every per-pair metric identical; FID
  to float32 rounding);
* ``full_market_estimate``: 12,000 pairs × 3 methods + 12,936 training images as the real set,
  extrapolated from the per-pair and per-real-image seconds measured here, plus the FID distance
  at n > 2048 (timed here on random 2048-d statistics).

The project: ``--project`` (default: this clone) must have the manifests (``dvc repro
manifests``; ``make bench`` runs it). The evaluation runs in a temporary project that links
those manifests and, when the project has trained ``stage1``/``stage2`` weights, those too;
otherwise random-weight G1 / G2 at the quick widths (C = 8 / 16): generation costs the same, but
BlazePose finds no person in their outputs and answers faster than on a trained model's
(see ``blazepose_people_found``). Nothing in the project is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pg2_pipeline.config import load_params  # noqa: E402
from pg2_pipeline.evaluate.fid import (  # noqa: E402
    CPU_NETWORK_BATCH,
    FEATURE_DIM,
    FIDStats,
    InceptionFeatures,
    fid,
    inception_input,
)
from pg2_pipeline.evaluate.stage import METHODS, SERIAL, Speed, build_evaluation  # noqa: E402
from pg2_pipeline.paths import ProjectPaths  # noqa: E402
from pg2_pipeline.runtime import cpu_model  # noqa: E402

THREADS = 2
FULL_PAIRS, FULL_REAL = 12_000, 12_936  # the standard Market test pairs; Market-1501's training images
GOAL_PAIRS_PER_S = 5.0
QUICK_WIDTHS = {"g1": {"base_channels": 8, "relu_slope": 0.2, "z_dim": 64}, "g2": {"base_channels": 16}}


# ------------------------------------------------------------------------------------- setup


def make_project(src: ProjectPaths, tmp: Path, pairs: int, real: int) -> tuple[ProjectPaths, str]:
    """A temporary project: src's params (evaluation sized to the bench), its manifests linked,
    its trained stage folders linked or random-weight quick-width generators."""
    if not src.manifest_table("test").is_file() or not src.cache.header("train").is_file():
        raise SystemExit(f"no manifests in {src.root}: run `dvc repro manifests` there (make bench does)")
    root = tmp / "project"
    paths = ProjectPaths(root)
    root.mkdir()
    params = yaml.safe_load(src.params_file.read_text())
    profile = params["base"]["profile"]
    overrides = params["evaluation"].get("profiles", {}).get(profile, {})
    params["evaluation"]["profiles"][profile] = {**overrides, "max_pairs": pairs, "fid_real_images": real,
                                                 "device": "cpu", "nproc_per_node": 1}  # fmt: skip
    paths.params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    manifests = paths.manifest_table("test").parent
    manifests.parent.mkdir(parents=True, exist_ok=True)
    manifests.symlink_to(src.manifest_table("test").parent.resolve())
    trained = all(src.stage(s).weights(n).is_file() for s, n in (("stage1", "g1"), ("stage2", "g2")))
    if trained:
        for stage in ("stage1", "stage2"):
            paths.stage(stage).folder.parent.mkdir(parents=True, exist_ok=True)
            paths.stage(stage).folder.symlink_to(src.stage(stage).folder.resolve())
        return paths, f"trained ({src.root}/assets/stage1, stage2)"
    from pg2_pipeline.inputs.cache import TensorCache
    from pg2_pipeline.models import build_generator
    from pg2_pipeline.models.io import save_model

    h, w = TensorCache.open(src.cache, "test").size_hw
    torch.manual_seed(0)
    for stage, name, extra in (("stage1", "g1", {}), ("stage2", "g2", {"zero_init_output": False})):
        config = {"height": h, "width": w, **QUICK_WIDTHS[name], **extra}
        save_model(paths.stage(stage), name, build_generator(name, **config).eval(), config)
    return paths, "random weights, quick widths (G1 C=8 leaky, G2 C=16)"


# ------------------------------------------------------------------------------------ pieces


def bench_inception(reps: int = 3, batch: int = 32) -> dict:
    """Images/s of the TorchScript file (32 images a pass, as shipped) and of the folded port at
    several images per pass (the CPU default is ``CPU_NETWORK_BATCH``), interleaved; ``batch``
    images a call."""
    sweep = sorted({2, 4, 8, 32, CPU_NETWORK_BATCH})
    nets = {"torchscript": InceptionFeatures(folded=False, batch_size=32)}
    nets |= {f"folded_{n}": InceptionFeatures(folded=True, batch_size=n) for n in sweep}
    images = torch.randint(0, 256, (batch, 3, 128, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rates: dict[str, list[float]] = {k: [] for k in nets}
    out = {k: f(images) for k, f in nets.items()}  # warm-up (oneDNN primitives, weight packing)
    for _ in range(reps):
        for k, f in nets.items():
            start = time.perf_counter()
            f(images)
            rates[k].append(batch / (time.perf_counter() - start))
    med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    ref, default = out["torchscript"], f"folded_{CPU_NETWORK_BATCH}"
    return {
        "images_per_s": {"torchscript": round(med["torchscript"], 2), "folded": round(med[default], 2)},
        "speedup": round(med[default] / med["torchscript"], 2),
        "feature_rel_diff": float(f"{float((out[default] - ref).norm() / ref.norm()):.2e}"),
        "folded_by_images_per_pass": {k.split("_")[1]: round(med[k], 2) for k in nets if k != "torchscript"},
        "folded_identical_at_every_pass_size": all(torch.equal(out[default], out[f"folded_{n}"]) for n in sweep),
        "images_per_pass": {"torchscript": 32, "folded": CPU_NETWORK_BATCH},
        "batch": batch,
        "input": "128x64 uint8, resized to 299x299 inside",
        "network_input_shape": list(inception_input(images[:1]).shape),
    }


def bench_full_fid_distance() -> dict:
    """Seconds of the FID distance at n > 2048 (the full evaluation): the 2048² route."""
    g = torch.Generator().manual_seed(0)
    stats = [FIDStats.from_features([torch.randn(2 * FEATURE_DIM + 100, FEATURE_DIM, generator=g)]) for _ in range(2)]
    real, gen = stats
    start = time.perf_counter()
    fid(real, gen, method="eigh")  # the real set's root, then the product's eigenvalues
    first = time.perf_counter() - start
    start = time.perf_counter()
    fid(real, gen, method="eigh")  # root cached on the real set's stats
    again = time.perf_counter() - start
    # serial: fid(generated, real) for each method -> three roots; fast: one root, three products
    return {"serial_s": round(3 * first, 2), "fast_s": round(first + 2 * again, 2)}


def run(paths: ProjectPaths, speed: Speed) -> dict:
    params = load_params(paths.params_file)
    start = time.perf_counter()
    summary = build_evaluation(params, paths, progress=False, speed=speed)
    seconds = time.perf_counter() - start
    pairs = summary.metrics.pairs
    parts = summary.speed["seconds_by_part"]
    return {
        "seconds": round(seconds, 2),
        "pairs_per_s": round(pairs / seconds, 2),
        "seconds_by_part": parts,
        "pose_workers": summary.speed["pose_workers"],
        "real_set_cache": summary.fid["real_set_cache"]["status"],
        "copy_features_reused": summary.fid["copy_features_reused"],
        "poses_reused": summary.speed["poses_reused"],
        "_metrics": {m: summary.metrics.method(m) for m in METHODS},
        "_pairs": pairs,
        "_real": summary.fid["real_images"],
    }


def agreement(runs: dict) -> dict:
    base = runs["serial"]["_metrics"]
    out = {"fid": {}, "other_metrics_identical": True}
    for name, r in runs.items():
        for m in METHODS:
            a, b = r["_metrics"][m], base[m]
            out["fid"].setdefault(m, {})[name] = a["fid"]
            out["other_metrics_identical"] &= all(a[k] == b[k] for k in a if k != "fid")
    diffs = [abs(r[k] - r["serial"]) / r["serial"] for r in out["fid"].values() for k in r]
    out["fid_max_rel_diff"] = float(f"{max(diffs):.2e}")
    out["pckh_stage2"] = {name: r["_metrics"]["stage2"]["pckh"] for name, r in runs.items()}
    return out


def estimate(r: dict, fid_full_s: float, *, warm: bool, cold_real_s_per_image: float | None = None) -> dict:
    """Seconds of the full evaluation from one run: fixed setup, per-pair work (generation,
    metrics, Inception, BlazePose, the report), the real set per image, the FID distance."""
    parts = r["seconds_by_part"]
    real_s = parts.get("inception_real", 0.0)
    per_pair = (r["seconds"] - parts.get("setup", 0.0) - real_s - parts.get("fid_distance", 0.0)) / r["_pairs"]
    per_real = real_s / r["_real"] if cold_real_s_per_image is None else cold_real_s_per_image
    total = parts.get("setup", 0.0) + FULL_PAIRS * per_pair + FULL_REAL * per_real + fid_full_s
    return {
        "hours": round(total / 3600, 2),
        "seconds_per_pair": round(per_pair, 4),
        "seconds_per_real_image": round(per_real, 4) if not warm else "hashing only: " + f"{per_real:.5f}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="a project whose manifests are materialized")
    parser.add_argument("--pairs", type=int, default=200, help="test pairs (the quick evaluation: 200)")
    parser.add_argument("--real", type=int, default=200, help="FID real-set images (quick: 200)")
    parser.add_argument("--skip-serial", action="store_true", help="no serial baseline (not for figures)")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    result = {
        "cpu": cpu_model(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "torch_threads": THREADS,
        "torch": torch.__version__,
        "load_average_1min_before": round(os.getloadavg()[0], 2),
        "pairs": args.pairs,
        "real_images": args.real,
    }
    result["inception"] = bench_inception()
    fid_full = bench_full_fid_distance()
    result["fid_distance_full_n"] = fid_full
    with tempfile.TemporaryDirectory(prefix="bench_evaluation_") as tmp:
        paths, generators = make_project(ProjectPaths(args.project), Path(tmp), args.pairs, args.real)
        result["generators"] = generators
        runs = {}
        if not args.skip_serial:
            runs["serial"] = run(paths, SERIAL)
        shutil.rmtree(paths.local_cache.folder, ignore_errors=True)
        runs["fast_cold"] = run(paths, Speed())
        runs["fast_warm"] = run(paths, Speed())
    result["runs"] = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in runs.items()}
    if "serial" in runs:
        result["agreement"] = agreement(runs)
        result["speedup_pairs_per_s"] = {k: round(runs[k]["pairs_per_s"] / runs["serial"]["pairs_per_s"], 2)
                                         for k in ("fast_cold", "fast_warm")}  # fmt: skip
    result["blazepose_people_found"] = {m: runs["fast_cold"]["_metrics"][m].get("detection_rate") for m in METHODS} | {
        "real_targets": runs["fast_cold"]["_metrics"]["stage2"].get("detection_rate_real_targets")
    }
    result["goal"] = {
        "pairs_per_s": GOAL_PAIRS_PER_S,
        "cold_met": runs["fast_cold"]["pairs_per_s"] >= GOAL_PAIRS_PER_S,
        "warm_met": runs["fast_warm"]["pairs_per_s"] >= GOAL_PAIRS_PER_S,
    }
    cold_real = runs["fast_cold"]["seconds_by_part"].get("inception_real", 0.0) / runs["fast_cold"]["_real"]
    full = {"pairs": FULL_PAIRS, "methods": len(METHODS), "real_images": FULL_REAL}
    if "serial" in runs:
        full["serial"] = estimate(runs["serial"], fid_full["serial_s"], warm=False)
    full["fast_cold"] = estimate(runs["fast_cold"], fid_full["fast_s"], warm=False)
    full["fast_warm"] = estimate(runs["fast_warm"], fid_full["fast_s"], warm=True)
    full["note"] = (
        "linear in pairs and real images from this run's per-part seconds; warm = real set, copy features "
        "and real-image poses cached by an earlier evaluation of the same pairs; cold_real_s_per_image "
        f"{cold_real:.4f}"
    )
    result["full_market_estimate"] = full
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
