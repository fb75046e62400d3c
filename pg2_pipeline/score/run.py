"""``pg2 score``: any method's outputs, read through a layout, scored under every named protocol
against the dataset's own target images, side by side.

    result = score_outputs("results/patn", out="scores/patn", dataset="market", images="data/Market-1501")

Writes ``metrics.json``, ``per_pair.parquet`` and ``report.md`` into ``out`` (each atomically),
logs an MLflow run when a tracking store is given, and returns the metrics mapping. Nothing
scorable raises :class:`~pg2_pipeline.score.layouts.NothingToScore` (the CLI's exit code 2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.score.core import SKIPPABLE, PairBatch, Scorer
from pg2_pipeline.score.protocols import PROTOCOLS, TF_INCEPTION, TORCHVISION_INCEPTION, Protocol, get_protocol
from pg2_pipeline.viz import read_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
BATCH = 32


@dataclass
class ScoreRun:
    """What one scoring run saw and produced."""

    metrics: dict
    problems: list = field(default_factory=list)
    how: str = ""
    seconds: float = 0.0
    out: Path | None = None


# ------------------------------------------------------------------------------ the dataset


def expected_pairs(dataset: str, pairs_csv: str | Path | None = None) -> list[tuple[str, str]]:
    """The standard test pairs of ``dataset`` (or a ``from,to`` CSV), in file order."""
    from pg2_pipeline.data.annotations import read_pairs_file, standard_file

    table = read_pairs_file(pairs_csv) if pairs_csv else standard_file(dataset_spec(dataset).test_pairs)
    return list(zip(table.column("from").to_pylist(), table.column("to").to_pylist(), strict=True))


def image_files(root: Path, dataset: str) -> dict[str, Path]:
    """Image name (as the pair lists spell it) -> file, for every image under ``root``."""
    from pg2_pipeline.data.names import fashion_path_to_flat

    if not root.is_dir():
        raise FileNotFoundError(f"dataset images: {root} is not a folder (--images)")
    files = {}
    for path in root.rglob("*"):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        name = path.name
        if dataset == "deepfashion" and not name.startswith("fashion"):
            try:
                name = fashion_path_to_flat(str(path.relative_to(root)))
            except ValueError:
                continue
        files.setdefault(name, path)
    return files


def keypoints_by_name(dataset: str) -> dict[str, np.ndarray]:
    """(18, 2) (y, x) keypoints of every image of the standard test annotations."""
    from pg2_pipeline.data.annotations import keypoints_array, standard_file

    table = standard_file(dataset_spec(dataset).annotations["test"])
    return dict(zip(table.column("name").to_pylist(), keypoints_array(table), strict=True))


# ------------------------------------------------------------------------------ real set


def real_batches_from_folder(folder: Path, limit: int | None = None, seed: int = 0) -> Iterator[torch.Tensor]:
    """uint8 (B, 3, H, W) batches of every image under ``folder`` (sorted; a seeded subset of
    ``limit``). Images of another size than the first are an error naming the file."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"real set: no images under {folder}")
    if limit is not None and limit < len(files):
        files = [files[i] for i in np.sort(np.random.default_rng([seed, 7]).choice(len(files), limit, replace=False))]
    shape = None
    for start in range(0, len(files), 64):
        chunk = []
        for path in files[start : start + 64]:
            image = read_rgb(path)
            if shape is None:
                shape = image.shape
            if image.shape != shape:
                raise ValueError(f"real set: {path} is {image.shape[1]}×{image.shape[0]}, expected the first "
                                 f"image's {shape[1]}×{shape[0]}")  # fmt: skip
            chunk.append(image)
        yield torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2)


def real_stats_function(real_batches, dataset: str, device: torch.device, features, cache_dir: Path | None, log):
    """``real_stats(protocol)`` for :meth:`Scorer.compute`: the real set prepared the protocol's
    way and featured once per (content, feature protocol), through the evaluation's feature cache."""
    from pg2_pipeline.score.core import _resize

    images = None
    memo = {}

    def stats(protocol: Protocol):
        nonlocal images
        g = protocol.on(dataset)
        key = (tuple(g.size), g.prepare_target, protocol.fid.features)
        if key not in memo:
            if images is None:
                images = list(real_batches())
            prepared = [_resize(b, g.size, g.prepare_target) for b in images]
            memo[key] = _real_fid_stats(prepared, features[protocol.fid.features], cache_dir, log)
        return memo[key]

    return stats


def _real_fid_stats(batches: list[torch.Tensor], features, cache_dir: Path | None, log):
    """The real set's statistics from the evaluation's feature cache (``.pg2_cache/features``):
    read when this real set was featured before under this feature protocol, else computed (real
    images already featured, e.g. by the evaluation, reused) and stored."""
    from pg2_pipeline.evaluate.feature_cache import real_stats

    stats, info = real_stats(batches, features, cache_dir, store=feature_store(features, cache_dir, log), log=log)
    log(f"FID real set: {info.images:,} images, cache {info.status} ({info.computed_images:,} featured now)")
    return stats


def feature_store(features, cache_dir: Path | None, log=print, kind: str = "inception"):
    """The per-image feature store of a feature network (the evaluation's, for its Inception);
    kind ``inception-outputs``: the features of the latest evaluation's saved outputs (read-only
    here)."""
    from pg2_pipeline.evaluate.feature_cache import ImageStore

    if cache_dir is None:
        return None
    return ImageStore(cache_dir, kind, features.protocol, getattr(features, "dim", 2048), log=log)


# ------------------------------------------------------------------------------ scoring


def score_outputs(
    generated: str | Path,
    out: str | Path,
    *,
    dataset: str = "market",
    images: str | Path,
    pairs: str | Path | None = None,
    layout: str = "auto",
    tiles: int | None = None,
    generated_tile: int | None = None,
    protocols: list[str] | None = None,
    skip: list[str] | tuple[str, ...] = (),
    real_batches=None,
    real_description: str = "",
    cache_dir: Path | None = None,
    fid_weights: str | Path | None = None,
    device: str = "auto",
    log=print,
    progress: bool = True,
) -> ScoreRun:
    """Scores the outputs in ``generated`` (see the module docstring). ``real_batches``: a
    callable giving uint8 batches of the real set (FID); None leaves FID unavailable.
    ``fid_weights``: a TorchScript torchvision ImageNet Inception-v3 for the GFLA / CFLD FID."""
    from pg2_pipeline.progress import bar as progress_bar
    from pg2_pipeline.runtime import resolve_device
    from pg2_pipeline.score import layouts
    from pg2_pipeline.score.report import write_outputs

    start = time.perf_counter()
    bad_skip = [s for s in skip if s not in SKIPPABLE]
    if bad_skip:
        raise ValueError(f"--skip {bad_skip[0]!r}: expected some of {', '.join(SKIPPABLE)}")
    chosen = [get_protocol(name) for name in (protocols or list(PROTOCOLS))]
    for p in chosen:
        p.on(dataset)  # an error now if a protocol does not cover the dataset
    spec = dataset_spec(dataset)
    expected = expected_pairs(dataset, pairs)
    scan = layouts.scan(Path(generated), expected, layout=layout, tiles=tiles, generated_tile=generated_tile,
                        tile_size=(spec.height, chosen[0].on(dataset).size[1]))  # fmt: skip
    log(f"layout: {scan.how}")
    problems = list(scan.problems)
    if not scan.items:
        raise layouts.NothingToScore(layouts.nothing_to_score_message(Path(generated), scan))

    dev = resolve_device(device)
    files = image_files(Path(images), dataset)
    keypoints = keypoints_by_name(dataset)
    lpips_net, fid_features = None, {}
    if "lpips" not in skip and any(p.lpips for p in chosen):
        from pg2_pipeline.evaluate.lpips import LPIPS

        lpips_net = LPIPS.pretrained(device=dev)
    wanted = {p.fid.features for p in chosen if p.fid} if "fid" not in skip else set()
    if TF_INCEPTION in wanted:
        from pg2_pipeline.evaluate.fid import InceptionFeatures

        fid_features[TF_INCEPTION] = InceptionFeatures(device=dev)
    if TORCHVISION_INCEPTION in wanted and fid_weights:
        from pg2_pipeline.score.features import TorchvisionInception

        fid_features[TORCHVISION_INCEPTION] = TorchvisionInception(fid_weights, dev)
    # generated images featured before (same pixels: e.g. the evaluation's saved outputs) are reused
    from pg2_pipeline.evaluate.feature_cache import OUTPUTS_KIND

    stores = {name: feature_store(f, cache_dir, log) for name, f in fid_features.items()}
    latest = {name: feature_store(f, cache_dir, log, OUTPUTS_KIND) for name, f in fid_features.items()}
    cached = {name: _cached(f, stores[name], latest[name]) for name, f in fid_features.items()}
    poses = None
    if "pckh" not in skip and any(p.pckh for p in chosen):
        from pg2_pipeline.evaluate.pose_pool import PoseRunner, auto_workers

        poses = PoseRunner.for_evaluation(auto_workers(), cache_dir)
    scorer = Scorer(chosen, dataset, dev, skip=skip, lpips_net=lpips_net, fid_features=cached, poses=poses)

    bar = progress_bar(len(scan.items), "score", "pair", enabled=progress)
    pending: dict[tuple, list] = {}
    for item in scan.items:
        loaded = _load(item, files, keypoints, scorer, problems)
        bar.update(1)
        if loaded is None:
            continue
        group = pending.setdefault(loaded[1].shape[:2], [])
        group.append(loaded)
        if len(group) == BATCH:
            scorer.update(_batch(pending.pop(loaded[1].shape[:2])))
    for group in pending.values():
        scorer.update(_batch(group))
    bar.close()
    for name, store in stores.items():
        if store is not None:
            reused = store.reused + latest[name].reused
            counts = f"{store.computed:,} computed, {reused:,} from the feature cache"
            log(f"{name} features of the generated images: {counts}")

    real = None
    if real_batches is not None and fid_features:
        real = real_stats_function(real_batches, dataset, dev, fid_features, cache_dir, log)
    try:
        results = scorer.compute(real)
    finally:
        if poses is not None:
            poses.close()
    for store in stores.values():
        if store is not None:
            store.save()
    for p in chosen:  # which network a user-supplied FID used: same fingerprint, same file -> comparable
        if p.fid and p.fid.features in fid_features and hasattr(fid_features[p.fid.features], "sha256"):
            results[p.name]["fid_weights_sha256"] = fid_features[p.fid.features].sha256
    scored = len({k for r in scorer.results.values() for k in r.keys})
    counts = {
        "scored": scored,
        "expected": len(expected),
        "missing": sum(1 for p in problems if p.kind == "missing"),
        "unmatched": sum(1 for p in problems if p.kind == "unmatched"),
        "bad": sum(1 for p in problems if p.kind == "bad"),
    }
    metrics = {"pairs": counts, "dataset": dataset, "layout": scan.layout, "protocols": results}
    run = ScoreRun(metrics, problems, scan.how, round(time.perf_counter() - start, 2), Path(out))
    write_outputs(run, scorer, chosen, dataset, real_description, Path(out), generated=Path(generated))
    return run


def _cached(features, store, also=None):
    from pg2_pipeline.evaluate.feature_cache import cached_call

    return lambda images: cached_call(features, images, store, also=also)


def _load(item, files, keypoints, scorer: Scorer, problems: list):
    """(item, generated, target, target_yx, condition_yx) or None with the problem recorded."""
    from pg2_pipeline.score.layouts import BadImage, Problem

    try:
        generated = item.load()
    except BadImage as exc:
        problems.append(Problem("bad", item.source, str(exc), pair=(item.from_name, item.to_name)))
        return None
    size = tuple(generated.shape[:2])
    if not scorer.accepts(size):
        accepted = sorted({f"{w}×{h}" for p in scorer.protocols for h, w in p.on(scorer.dataset).accepts})
        problems.append(
            Problem("bad", item.source, f"size {size[1]}×{size[0]} (W×H), expected {' or '.join(accepted)}")
        )
        return None
    target_path = files.get(item.to_name)
    if target_path is None:
        why = f"target image {item.to_name} is not in the dataset images"
        problems.append(Problem("bad", item.source, why, pair=(item.from_name, item.to_name)))
        return None
    missing = [n for n in (item.to_name, item.from_name) if n not in keypoints]
    if missing:
        why = f"no keypoints for {missing[0]} in the standard annotations"
        problems.append(Problem("bad", item.source, why, pair=(item.from_name, item.to_name)))
        return None
    return item, generated, read_rgb(target_path), keypoints[item.to_name], keypoints[item.from_name]


def _batch(group: list) -> PairBatch:
    to_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return PairBatch(
        keys=[(item.from_name, item.to_name) for item, *_ in group],
        generated=to_tensor([g for _, g, *_ in group]),
        target=to_tensor([t for _, _, t, _, _ in group]),
        target_yx=torch.from_numpy(np.stack([k for *_, k, _ in group])),
        condition_yx=torch.from_numpy(np.stack([k for *_, k in group])),
    )
