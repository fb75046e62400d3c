"""Scoring inside (or outside) a project: where the dataset images, the real set and the MLflow
store come from, for ``pg2 score`` and the ``score`` asset alike.

Inside a project the defaults are the project's: ``base.dataset``, ``image_index.root`` for the
target images, and as FID real set the evaluation's own (the training split of the tensor cache,
``evaluation.fid_real_images`` of them, the same seeded subset) — so scoring our saved outputs
gives the evaluation asset's numbers, and the real set's features come from the same cache
entry. Outside a project: ``--real DIR`` or, for Market-1501, ``bounding_box_train/`` under
``--images``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pg2_pipeline.score.run import ScoreRun, real_batches_from_folder, score_outputs


@dataclass(frozen=True)
class RealSet:
    batches: object  # callable () -> iterator of uint8 (B, 3, H, W)
    description: str


def project_real_set(paths, params, limit: int | None) -> RealSet | None:
    """The evaluation's FID real set: training images of the tensor cache (seeded subset)."""
    from pg2_pipeline.evaluate.real_set import training_images

    if not paths.cache.header("train").is_file():
        return None
    n = "all" if limit is None else f"{limit:,} (seeded subset, as the evaluation)"
    return RealSet(lambda: training_images(paths, limit, params.base.seed),
                   f"training images of the project's tensor cache, {n}")  # fmt: skip


def folder_real_set(folder: Path, limit: int | None, seed: int = 0) -> RealSet:
    n = "all" if limit is None else f"{limit:,} (seeded subset)"
    return RealSet(lambda: real_batches_from_folder(folder, limit, seed), f"images under {folder}, {n}")


def score_command(args) -> int:
    """``pg2 score`` (see cli.py for the arguments): 0 scored, 2 nothing scorable / bad input."""
    import sys

    from pg2_pipeline.env import find_project_root
    from pg2_pipeline.score.layouts import NothingToScore

    try:
        root = find_project_root()
    except FileNotFoundError:
        root = None
    params = paths = None
    if root is not None:
        from pg2_pipeline.config import load_params
        from pg2_pipeline.paths import ProjectPaths

        paths = ProjectPaths(root)
        params = load_params(paths.params_file)
    dataset = args.dataset or (params.base.dataset if params else "market")
    images = Path(args.images) if args.images else (paths.resolve(params.image_index.root) if paths else None)
    if images is None:
        print("error: --images DATASET_ROOT is needed outside a project", file=sys.stderr)
        return 2
    limit = args.fid_real_images
    real = None
    if args.real:
        real = folder_real_set(Path(args.real), limit)
    elif paths is not None and Path(images).resolve() == paths.resolve(params.image_index.root).resolve():
        real = project_real_set(paths, params, limit if limit is not None else params.evaluation.fid_real_images)
    elif dataset == "market" and (Path(images) / "bounding_box_train").is_dir():
        real = folder_real_set(Path(images) / "bounding_box_train", limit)
    skip = [s for s in (args.skip or "").split(",") if s]
    try:
        run = score_outputs(
            args.generated, args.output, dataset=dataset, images=images, pairs=args.pairs, layout=args.layout,
            tiles=args.tiles, generated_tile=args.generated_tile, protocols=args.protocol or None, skip=skip,
            real_batches=real.batches if real else None, real_description=real.description if real else "",
            cache_dir=paths.local_cache.features if paths else None, fid_weights=args.fid_weights,
            device=args.device,
        )  # fmt: skip
    except NothingToScore as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if real is None and "fid" not in skip:
        print("FID: no real set (give --real DIR, or run inside a project with manifests)")
    if params is not None and not args.no_mlflow:
        _log(run, params, paths)
    print(f"wrote {Path(args.output) / 'metrics.json'}, per_pair.parquet, problems.parquet, report.md")
    return 0


def _log(run: ScoreRun, params, paths) -> None:
    from pg2_pipeline import tracking
    from pg2_pipeline.score.report import log_to_mlflow

    experiment = tracking.setup(params, paths.root)
    run_id = log_to_mlflow(run, experiment)
    print(f"MLflow run {run_id}: {tracking.run_url(experiment, run_id)}")
