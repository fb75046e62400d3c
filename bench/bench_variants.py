"""Faithful PG² and its PG²+ variants side by side: the same G1, the same manifests, the same test
pairs; several training seeds each; mean ± std of every quality metric and of the copy detector.

    make demo                                    # once: the quick twin's manifests and G1
    .venv/bin/python bench/bench_variants.py     # ~100 min on 2 AVX2 cores; prints one JSON object
    .venv/bin/python bench/bench_variants.py --stage2-steps 60 --pairs 64   # ~40 min: shorter, fewer pairs
    .venv/bin/python bench/bench_variants.py --variants pg2,pg2plus --seeds 0,1 --project /other/clone
    .venv/bin/python bench/bench_variants.py --train-stage1 --variants pg2plus   # the whole demo, 3 seeds
    .venv/bin/python bench/bench_variants.py --variants pg2plus --split val --set stage2.steps=300   # tuning

Settings are chosen on the validation pairs (``--split val``: training identities held out of
training), never on the test pairs; ``--set SECTION.KEY=VALUE`` (YAML value, repeatable) changes
one setting of every run on top of the profile's.

Each run copies the project's params, links its data, manifests and (unless ``--train-stage1``)
its stage-1 weights into a scratch folder, trains stage 2 with ``stage2.variant`` and
``stage2.seed`` set (and the profile's other values), and scores it with the evaluation code on
the project's evaluation pairs (FID, LPIPS and BlazePose PCKh included). The baselines of the same
run are G1 alone and "copy the condition image". The Markdown table goes to
``bench/results/variants.md``; the JSON also holds every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pg2_pipeline.config import load_params  # noqa: E402
from pg2_pipeline.paths import ProjectPaths  # noqa: E402

METRICS = (
    "ssim",
    "mask_ssim",
    "lpips",
    "fid",
    "ssim_to_condition",
    "l1_to_condition",
    "pckh",
    "detection_rate",
    "pckh_detected",
)
LINKED = ("twin", "image_index", "keypoints", "pairs", "manifests")


def set_stage(raw: dict, section: str, profile: str, **values) -> None:
    """Values for ``section`` that win over its profile block (which the loader applies last)."""
    raw[section].setdefault("profiles", {}).setdefault(profile, {}).update(values)


def run_one(
    project: ProjectPaths,
    variant: str,
    seed: int,
    train_stage1: bool,
    work: Path,
    steps: int | None,
    pairs: int | None,
    split: str = "test",
    settings: dict[str, dict] | None = None,
) -> dict:
    from pg2_pipeline.evaluate.stage import build_evaluation
    from pg2_pipeline.train.loop import train
    from pg2_pipeline.train.stage1 import Stage1
    from pg2_pipeline.train.stage2 import Stage2

    root = work / f"{variant}-seed{seed}"
    (root / "assets").mkdir(parents=True)
    raw = yaml.safe_load(project.params_file.read_text())
    profile = raw["base"]["profile"]
    set_stage(raw, "stage2", profile, variant=variant, seed=seed, **({"steps": steps} if steps else {}))
    if pairs:
        set_stage(raw, "evaluation", profile, max_pairs=pairs, fid_real_images=pairs)
    if train_stage1:
        set_stage(raw, "stage1", profile, seed=seed)
    for section, values in (settings or {}).items():
        set_stage(raw, section, profile, **values)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (root / "dvc.yaml").write_text((project.root / "dvc.yaml").read_text())
    for name in (*LINKED, *(() if train_stage1 else ("stage1",))):
        os.symlink(project.asset_dir(name), root / "assets" / name)
    paths, params = ProjectPaths(root), load_params(root / "params.yaml")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    started = time.perf_counter()
    if train_stage1:
        train(Stage1, params, paths, progress=False)
    s2 = train(Stage2, params, paths, progress=False)
    evaluation = build_evaluation(params, paths, progress=False, split=split)
    m = evaluation.metrics
    return {
        "variant": variant,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "pairs": m.pairs,
        "selected": {"rule": s2.selected.rule, "step": s2.selected.step},
        "stage2": {k: m.stage2.get(k) for k in METRICS},
        "stage1": {k: m.stage1.get(k) for k in METRICS},
        "copy": {k: m.copy.get(k) for k in METRICS},
    }


def parse_settings(items: list[str]) -> dict[str, dict]:
    """``["stage2.steps=300", "stage2.lr=2e-4"]`` -> ``{"stage2": {"steps": 300, "lr": 0.0002}}``."""
    settings: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not (sep and dot and section and name):
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. stage2.steps=300")
        settings.setdefault(section, {})[name] = yaml.safe_load(value)
    return settings


def mean_std(values: list) -> dict:
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    if not numbers:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    return {"mean": round(statistics.fmean(numbers), 4), "std": round(std, 4), "n": len(numbers)}


def summarise(runs: list[dict]) -> dict:
    table = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        table[variant] = {k: mean_std([r["stage2"][k] for r in mine]) for k in METRICS}
        table[variant]["selected_step"] = mean_std([r["selected"]["step"] for r in mine])
    for baseline in ("stage1", "copy"):
        table[f"baseline: {baseline}"] = {k: mean_std([r[baseline][k] for r in runs]) for k in METRICS}
    return table


def markdown(table: dict, seeds: list[int], pairs: int, steps: int, split: str = "test") -> str:
    def cell(d: dict) -> str:
        return (
            "n/a"
            if d["mean"] is None
            else f"{d['mean']:.4f} ± {d['std']:.4f}"
            if d["mean"] < 10
            else f"{d['mean']:.1f} ± {d['std']:.1f}"
        )

    head = ["SSIM ↑", "mask-SSIM ↑", "LPIPS ↓", "FID ↓", "SSIM to I_A", "PCKh ↑", "detected", "PCKh on detected"]
    keys = ["ssim", "mask_ssim", "lpips", "fid", "ssim_to_condition", "pckh", "detection_rate", "pckh_detected"]
    lines = [
        f"Mean ± std over seeds {seeds}, {steps} stage-2 steps, {pairs} {split} pairs; "
        "PCKh: BlazePose (not comparable to OpenPose-based papers).",
        "",
        "| stage 2 | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(cell(row[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project", type=Path, default=ROOT, help="a project whose manifests (and stage1) are materialized"
    )
    parser.add_argument(
        "--variants", default=None, help="comma-separated names of params stage2.variants (default: all)"
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-stage1", action="store_true", help="train G1 per seed too (the whole demo's spread)")
    parser.add_argument("--stage2-steps", type=int, default=None, help="shorter stage 2 than the profile's")
    parser.add_argument(
        "--pairs", type=int, default=None, help="fewer test pairs (and FID real images) than the profile's"
    )
    parser.add_argument(
        "--split", choices=("test", "val"), default="test", help="pairs to score (choose settings on val)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="settings")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "variants.md")
    args = parser.parse_args(argv)
    project = ProjectPaths(args.project.resolve())
    needed = ("manifests",) if args.train_stage1 else ("manifests", "stage1")
    missing = [n for n in needed if not project.summary(n).is_file()]
    if missing:
        raise SystemExit(
            f"{project.root}: {', '.join(missing)} not materialized: run `make demo` first (or pass --project DIR)"
        )
    params = load_params(project.params_file)
    raw = yaml.safe_load(project.params_file.read_text())
    variants = args.variants.split(",") if args.variants else list(raw["stage2"]["variants"])
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = parse_settings(args.settings)
    runs = []
    with tempfile.TemporaryDirectory(prefix="pg2-variants-") as tmp:
        for variant in variants:
            for seed in seeds:
                runs.append(
                    run_one(
                        project,
                        variant,
                        seed,
                        args.train_stage1,
                        Path(tmp),
                        args.stage2_steps,
                        args.pairs,
                        args.split,
                        settings,
                    )
                )
                print(f"# {variant} seed {seed}: {json.dumps(runs[-1]['stage2'])}", file=sys.stderr, flush=True)
                shutil.rmtree(Path(tmp) / f"{variant}-seed{seed}")
    table = summarise(runs)
    pairs = runs[0]["pairs"] if runs else args.pairs
    steps = args.stage2_steps or params.stage2.steps
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(table, seeds, pairs, steps, args.split))
    print(
        json.dumps(
            {
                "benchmark": "PG² vs PG²+ variants from the same G1"
                if not args.train_stage1
                else "the demo's G1 + G2, per seed",
                "project": str(project.root),
                "profile": params.base.profile,
                "dataset": params.base.dataset,
                "stage2_steps": steps,
                "seeds": seeds,
                "evaluation_pairs": pairs,
                "split": args.split,
                "settings": settings,
                "table": table,
                "runs": runs,
                "markdown": str(args.out),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
