"""The ``evaluation`` stage: generate the test pairs with stage 2 (G1 + G2), stage 1 (G1) and the
"copy the condition image" baseline, score every pair under named protocols, and register the
stage-2 generator (``champion`` alias only when it beats the copy baseline on mask-SSIM).

Outputs (assets/evaluation/): ``metrics.json`` (DVC metrics), ``curves.csv`` (DVC plots),
``report/metrics.md``, ``report/per_pair.parquet``, ``report/examples.png`` (best / median /
worst), ``report/curves.png`` (metrics over checkpoints); everything is also logged to the MLflow
run ``evaluation``.

How it runs (:class:`Speed`; none of it changes a number beyond float32 rounding of FID features):
the torch work first — per batch: generation, SSIM / PSNR / L1, LPIPS, Inception features — then
the real set's statistics (from ``.pg2_cache/features`` when this machine has computed them for
the same images and protocol), then BlazePose on every queued batch in worker processes that have
the cores to themselves. The summary's ``speed`` records the seconds of each part.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from pg2_pipeline import fileio, summaries
from pg2_pipeline.distributed import Dist, launch, torchrun_command, world_size
from pg2_pipeline.evaluate import metrics as M
from pg2_pipeline.evaluate.feature_cache import OUTPUTS_KIND, ImageStore, cached_call, image_digests, inception_store
from pg2_pipeline.evaluate.fid import GeneratedFeatures
from pg2_pipeline.evaluate.inception_score import (
    UNAVAILABLE_REASON,
    Unavailable,
    inception_score,
    load_inception_logits,
)
from pg2_pipeline.evaluate.outputs import save_outputs
from pg2_pipeline.evaluate.pckh import PCKhCounts, pckh, pckh_score
from pg2_pipeline.evaluate.pose_pool import Pending, PoseRunner, auto_workers
from pg2_pipeline.evaluate.real_set import seeded_subset, training_images
from pg2_pipeline.evaluate.report import curves_csv, curves_picture, examples_picture, markdown_table, validation_curves
from pg2_pipeline.imaging import to_numpy_hwc, to_uint8
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.inputs.manifests import read_manifest
from pg2_pipeline.models.pg2 import PG2
from pg2_pipeline.pose.maps import pose_masks
from pg2_pipeline.progress import bar as progress_bar
from pg2_pipeline.runtime import resolve_device
from pg2_pipeline.summaries import ChampionGate, EvaluationMetrics, EvaluationSummary

METHODS = EvaluationMetrics.METHODS  # what each row of the table generated: stage2, stage1, copy
SSIM_NAMES = tuple(M.SSIM_PROTOCOLS)


@dataclass
class _Accumulator:
    per_pair: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, name: str, values: torch.Tensor | np.ndarray) -> None:
        array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        self.per_pair.setdefault(name, []).append(array.astype(np.float64))

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self.per_pair[name]) if name in self.per_pair else np.array([])


@torch.inference_mode()
def generate(pg2: PG2, batch) -> dict[str, torch.Tensor]:
    """uint8 (B, 3, H, W) images of each method for one batch of test pairs."""
    coarse, refined = pg2(batch.condition, batch.target_map)
    return {"stage2": to_uint8(refined), "stage1": to_uint8(coarse), "copy": to_uint8(batch.condition)}


def champion_gate(metrics: EvaluationMetrics) -> ChampionGate:
    """The new generator earns ``@champion`` only when it beats "copy the condition image" on
    mask-SSIM: copying is what a generator that ignores the pose would do."""
    value, baseline = float(metrics.stage2["mask_ssim"]), float(metrics.copy["mask_ssim"])
    passed = value > baseline
    reason = f"mask-SSIM {value:.4f} {'>' if passed else '<='} copy baseline {baseline:.4f}: " + (
        "promoted to @champion" if passed else "registered without the champion alias"
    )
    return ChampionGate(
        passed=passed, metric="mask_ssim", value=value, baseline="copy", baseline_value=baseline, reason=reason
    )


def run_evaluation(params, paths, *, progress: bool = True) -> EvaluationSummary:
    """What the asset calls: :func:`build_evaluation` here, or sharded over params
    ``evaluation.nproc_per_node`` torchrun processes (the same numbers)."""
    cfg = params.evaluation
    if world_size(cfg) == 1:
        return build_evaluation(params, paths, progress=progress)
    cmd = torchrun_command("evaluation", cfg, "pg2_pipeline.evaluate.worker", ["--project", str(paths.root)])
    launch("evaluation", cfg, cmd, paths.root, "Rerun the evaluation.")
    return summaries.read(paths.evaluation.summary, EvaluationSummary)


@dataclass(frozen=True)
class Speed:
    """How the evaluation computes, not what: every setting gives the same metrics (FID to
    float32 rounding of the features, ~1e-6 relative). The defaults are the fast path;
    :data:`SERIAL` is the evaluation as it was before them (the benchmark's baseline)."""

    # BlazePose processes, which run once the torch work is done (None: one per CPU, at most 8; 0:
    # in this process, one image at a time). A torchrun worker runs its share in-process.
    pose_workers: int | None = None
    # <project>/.pg2_cache/features: the real set's FID statistics, and the Inception features and
    # BlazePose poses of real images (the copy baseline's condition images, the real targets)
    feature_cache: bool = True
    folded_inception: bool = True  # evaluate/inception_net.py's port of the FID network (2x on CPU)
    low_rank_fid: bool = True  # fid.fid_to_features: an n×n eigenproblem when n ≤ 2048 generated images


SERIAL = Speed(pose_workers=0, feature_cache=False, folded_inception=False, low_rank_fid=False)


class _Parts:
    """Seconds spent in each part of the evaluation (this process's wall clock)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}


@dataclass
class _Scores:
    """What one test batch contributes: per-pair metrics, set-metric features, pictures."""

    per_pair: dict[str, np.ndarray] = field(default_factory=dict)
    fid: dict[str, torch.Tensor] = field(default_factory=dict)  # method -> pool3 features
    logits: dict[str, torch.Tensor] = field(default_factory=dict)  # method[_mask] -> IS logits
    pck: dict[str, tuple[PCKhCounts, torch.Tensor]] = field(default_factory=dict)
    poses: dict[str, tuple[Pending, torch.Tensor]] = field(default_factory=dict)  # until resolved: -> pck
    copy_features_reused: int = 0  # copy-baseline images whose Inception features came from the cache
    images: dict[str, np.ndarray] = field(default_factory=dict)


def build_evaluation(
    params,
    paths,
    *,
    dist: Dist | None = None,
    progress: bool = True,
    speed: Speed = Speed(),
    split: str = "test",
) -> EvaluationSummary | None:
    """Scores the test pairs (see the module docstring). Returns the summary; registration is
    done by :func:`pg2_pipeline.registry.publish.publish_evaluation` (the asset calls both).
    With ``dist`` (a torchrun worker) this process scores batches rank, rank + N, ...; rank 0
    gathers them, merges them in order and writes everything (the others return None).
    ``speed``: how (not what) it computes; BlazePose runs in worker processes after the torch
    work, and what depends only on real images comes from the feature cache. ``split``: the test
    pairs; benchmarks that choose settings score the validation pairs (``"val"``) instead."""
    start = time.perf_counter()
    parts = _Parts()
    cfg, files = params.evaluation, paths.evaluation
    cache_dir = paths.local_cache.features if speed.feature_cache else None
    poses = None
    with parts("setup"):
        device = resolve_device(cfg.device) if dist is None else dist.device(resolve_device(cfg.device))
        workers = 0 if dist is not None else (auto_workers() if speed.pose_workers is None else speed.pose_workers)
        try:
            # first: the pose workers load MediaPipe while this process loads the networks
            poses = PoseRunner.for_evaluation(workers, cache_dir) if cfg.pckh else None
            full = PairLoader.from_manifest(paths, split, 1, shuffle=False, device=device)
            rows = seeded_subset(len(full.pairs), cfg.max_pairs, params.base.seed)
            loader = full.subset(rows, min(cfg.batch_size, len(rows)))
            pg2 = PG2.from_stage_folders(paths.stage("stage1"), paths.stage("stage2"), device)
            lpips_net, fid_features = _lpips(cfg, device), _fid_features(cfg, device, speed.folded_inception)
            store = inception_store(fid_features, cache_dir)
            is_net = (
                load_inception_logits(cfg.inception_logits_weights, device) if cfg.inception_logits_weights else None
            )
        except BaseException:
            if poses is not None:  # no worker processes left behind by a missing input
                poses.close(save=False)
            raise
    nets = (pg2, lpips_net, fid_features, is_net, poses, store)

    steps = range(loader.steps_per_epoch) if dist is None else range(dist.rank, loader.steps_per_epoch, dist.world)
    main = dist is None or dist.is_main
    bar = progress_bar(len(rows), "evaluation", "pair", enabled=progress and main)
    mine = {}
    try:
        for step in steps:
            mine[step] = _score_batch(loader, step, cfg, device, nets, parts)
            bar.update(len(loader.indices(step)[0]) * (dist.world if dist else 1))
        bar.close()
        if dist is not None:
            _resolve_poses(mine, poses, parts)  # futures do not travel; a rank's poses are computed already
            import torch.distributed as torch_dist

            shards = [None] * dist.world if main else None
            torch_dist.gather_object(mine, shards, dst=0)
            if not main:
                return None
            mine = {k: v for shard in shards for k, v in shard.items()}

        # merge in batch order: what one process would have accumulated
        acc = _Accumulator()
        fid_gen = {m: GeneratedFeatures() for m in METHODS}
        logits: dict[str, list] = {f"{m}{suffix}": [] for m in METHODS for suffix in ("", "_mask")}
        keep_images: dict[str, list[np.ndarray]] = {m: [] for m in (*METHODS, "condition", "target")}
        for step in sorted(mine):
            scores = mine[step]
            for name, values in scores.per_pair.items():
                acc.add(name, values)
            for method, features in scores.fid.items():
                fid_gen[method].add(features)
            for key, value in scores.logits.items():
                logits[key].append(value)
            for key, value in scores.images.items():
                keep_images[key].append(value)

        results = {m: _aggregate(acc, m, cfg.ssim_protocol) for m in METHODS}
        # the real set's Inception before the pose phase: each phase has every core

        def real_batches():
            return training_images(paths, cfg.fid_real_images, params.base.seed)

        fid_info = _fid(fid_features, fid_gen, real_batches, results, cache_dir, store, parts, speed.low_rank_fid)
        if fid_info["enabled"]:
            fid_info["copy_features_reused"] = sum(mine[step].copy_features_reused for step in mine)
        _resolve_poses(mine, poses, parts)
    finally:
        if poses is not None:
            poses.close(save=main)
        if store is not None and main:
            store.save()
    pck: dict[str, list[tuple[PCKhCounts, torch.Tensor]]] = {m: [] for m in (*METHODS, "real")}
    for step in sorted(mine):
        for key, value in mine[step].pck.items():
            pck[key].append(value)
    _pckh(pck, results)
    _inception(is_net, logits, results)
    with parts("report"):
        manifest = read_manifest(paths.manifest_table(split)).take(pa.array(rows))
        per_pair = _per_pair_table(manifest, acc)
        images = {k: np.concatenate(v) for k, v in keep_images.items()}
        ids = manifest.column("from_id").to_pylist(), manifest.column("to_id").to_pylist()
        save_outputs(files, *ids, images, cfg.save_outputs)  # pg2 score's files layout (score asset)
        if fid_features is not None and cache_dir is not None:  # the score asset's features of those files
            _save_output_features(cache_dir, fid_features.protocol, images, mine, cfg.save_outputs)
        curves = validation_curves(paths)
        metrics = EvaluationMetrics(
            pairs=int(len(rows)),
            test_pairs_available=int(len(full.pairs)),
            dataset=params.base.dataset,
            profile=params.base.profile,
            ssim_protocol=cfg.ssim_protocol,
            **{m: results[m] for m in METHODS},
        )
        summaries.write_metrics(files.metrics, metrics)
        fileio.write_bytes(files.per_pair, _parquet_bytes(per_pair))
        fileio.write_text(files.table, markdown_table(metrics, fid_info))
        fileio.write_png(files.examples, examples_picture(images, acc.column("stage2.mask_ssim"), cfg.examples))
        fileio.write_text(files.curves_csv, curves_csv(curves))
        fileio.write_png(files.curves, curves_picture(curves))
    summary = EvaluationSummary(
        metrics=metrics,
        fid=fid_info,
        curves_points=len(curves),
        gate=champion_gate(metrics),
        seconds=round(time.perf_counter() - start, 2),
        device=device.type,
        speed={
            **dataclasses.asdict(speed),
            "pose_workers": workers,
            "poses_reused": poses.store.reused if poses is not None and poses.store is not None else 0,
            "seconds_by_part": parts.rounded(),
        },
    )
    summaries.write(files.summary, summary)
    return summary


def _score_batch(
    loader: PairLoader, step: int, cfg, device: torch.device, nets, parts: _Parts | None = None
) -> _Scores:
    """Every metric of test batch ``step`` for each method (generation included). BlazePose work
    is only queued here for a pool (:func:`_resolve_poses` runs it after the torch work); a
    ``PoseRunner(0)`` computes it here. ``nets``: (pg2, lpips, fid features, IS logits, poses[,
    per-image feature store]) — bench/gpu_check.py times this function with the first five."""
    pg2, lpips_net, fid_features, is_net, poses, *rest = nets
    store = rest[0] if rest else None
    parts = parts or _Parts()
    h, w = loader.height, loader.width
    with parts("generation"):
        batch = loader.batch(step)
        sel, _ = loader.indices(step)
        target_yx = torch.from_numpy(loader.cache.keypoints[loader.pairs[sel, 1]]).to(device)
        condition_yx = torch.from_numpy(loader.cache.keypoints[loader.pairs[sel, 0]]).to(device)
        target, condition = to_uint8(batch.target), to_uint8(batch.condition)
        masks, condition_masks = pose_masks(target_yx, h, w), pose_masks(condition_yx, h, w)
        outputs = generate(pg2, batch)
    out = _Scores()
    if poses is not None:
        with parts("blazepose"):  # in-process BlazePose runs here; a pool's work is only queued
            # the copy baseline's images and the targets are real images: their poses may be cached
            for method, generated in outputs.items():
                out.poses[method] = (poses.submit(generated, reuse=method == "copy"), target_yx.cpu())
            out.poses["real"] = (poses.submit(target, reuse=True), target_yx.cpu())

    def add(name: str, values: torch.Tensor) -> None:
        out.per_pair[name] = values.detach().cpu().numpy().astype(np.float64)

    for method, generated in outputs.items():
        with parts("ssim"):  # with PSNR and L1
            for protocol in SSIM_NAMES:
                add(f"{method}.ssim_{protocol}", M.ssim(generated, target, protocol))
            add(f"{method}.mask_ssim", M.ssim(generated, target, cfg.ssim_protocol, mask=masks))
            # what the reference scoring script computes: masks of the *condition* pose
            add(f"{method}.mask_ssim_condmask", M.ssim(generated, target, cfg.ssim_protocol, mask=condition_masks))
            add(f"{method}.psnr", M.psnr(generated, target))
            add(f"{method}.l1", M.l1(generated, target))
            # the copy detector: how close the output is to the condition image it was given
            add(f"{method}.ssim_to_condition", M.ssim(generated, condition, cfg.ssim_protocol))
            add(f"{method}.l1_to_condition", M.l1(generated, condition))
        if lpips_net is not None:
            with parts("lpips"):
                add(f"{method}.lpips", lpips_net.score(generated, target))
        if fid_features is not None:
            with parts("inception"):
                # the copy baseline's outputs are real test images: their features may be cached
                reuse = store if method == "copy" else None
                before = store.reused if reuse is not None else 0
                out.fid[method] = cached_call(fid_features, generated, reuse).cpu()
                out.copy_features_reused += (store.reused - before) if reuse is not None else 0
        if is_net is not None:
            with parts("inception_logits"):
                out.logits[method] = is_net(generated).cpu()
                out.logits[f"{method}_mask"] = is_net(M.apply_mask(generated, masks)).cpu()
        out.images[method] = to_numpy_hwc(generated)
    out.images["condition"] = to_numpy_hwc(batch.condition)
    out.images["target"] = to_numpy_hwc(target)
    return out


def _resolve_poses(mine: dict[int, _Scores], poses: PoseRunner | None, parts: _Parts) -> None:
    """Runs the submitted BlazePose work on the workers (the torch work is done: they have the
    cores) and turns it into PCKh counts (in place)."""
    if poses is None:
        return
    with parts("blazepose"):
        poses.dispatch()
        for step in sorted(mine):
            scores = mine[step]
            for key, (pending, target_yx) in scores.poses.items():
                yx, found = poses.result(pending)
                scores.pck[key] = (pckh(yx, target_yx), found)
            scores.poses = {}


# ------------------------------------------------------------------------------------ parts


def _lpips(cfg, device):
    if not cfg.lpips:
        return None
    from pg2_pipeline.evaluate.lpips import LPIPS

    return LPIPS.pretrained(device=device)


def _fid_features(cfg, device, folded: bool = True):
    if not cfg.fid:
        return None
    from pg2_pipeline.evaluate.fid import InceptionFeatures

    # the serial path (the benchmark's baseline) keeps the 32-image passes it had
    return InceptionFeatures(device=device, batch_size=None if folded else 32, folded=folded)


def _estimator(cfg) -> PoseRunner | None:
    """BlazePose in this process (for :func:`_score_batch` without a pool: bench/gpu_check.py)."""
    return PoseRunner(0) if cfg.pckh else None


def _save_output_features(cache_dir, protocol: str, images: dict, mine: dict, methods) -> None:
    """Replaces the ``inception-outputs`` store with the Inception features of the saved outputs
    (keyed by their pixels, as the PNGs hold them): scoring those files computes none again."""
    from pg2_pipeline.evaluate.fid import FEATURE_DIM

    store = ImageStore(cache_dir, OUTPUTS_KIND, protocol, FEATURE_DIM, replace=True)
    for method in methods:
        features = torch.cat([mine[step].fid[method] for step in sorted(mine)])
        store.put(image_digests(images[method].transpose(0, 3, 1, 2)), features.numpy())
    store.save()


def _fid(features, generated: dict, real_batches, results: dict, cache_dir, store, parts: _Parts, low_rank: bool):
    from pg2_pipeline.evaluate.feature_cache import real_stats
    from pg2_pipeline.evaluate.fid import FID_PROTOCOL, fid

    if features is None:
        for m in METHODS:
            results[m]["fid"] = "disabled (params evaluation.fid: false)"
        return {"enabled": False}
    with parts("inception_real"):
        real, cache = real_stats(real_batches, features, cache_dir, store=store)
    with parts("fid_distance"):
        for m in METHODS:
            g = generated[m]
            if not low_rank:
                value = fid(g.stats, real, method="eigh")  # as before Speed (three 2048² roots)
            else:
                value = g.fid_to(real)
            results[m]["fid"] = round(value, 4)
    return {
        "enabled": True,
        "protocol": FID_PROTOCOL,
        "real_images": int(real.n),
        "real_set": "training images (tensor cache)",
        "generated_images": int(generated["stage2"].stats.n),
        "real_set_cache": cache.as_dict(),  # hit / miss / off, and the key of .pg2_cache/features/real-<key>.npz
    }


def _score(counts: PCKhCounts) -> float | str:
    try:
        return round(pckh_score(counts), 4)
    except ValueError as exc:
        return f"unavailable: {exc}"


def _pckh(pck: dict, results: dict) -> None:
    """PCKh over all pairs, BlazePose's detection rate, and PCKh on the images where it found a
    person (PCKh of a blurry image is mostly the detector failing: report both)."""
    for m, parts in pck.items():
        if not parts:
            continue
        fields = PCKhCounts.__dataclass_fields__
        pooled = PCKhCounts(*(torch.cat([getattr(c, f) for c, _ in parts]) for f in fields))
        found = torch.cat([d for _, d in parts])
        detected = PCKhCounts(*(getattr(pooled, f)[found] for f in fields))
        values = {"pckh": _score(pooled), "detection_rate": round(float(found.float().mean()), 4),
                  "pckh_detected": _score(detected) if found.any() else "unavailable: no person detected"}  # fmt: skip
        if m == "real":  # the estimator's ceiling on the real target images
            for method in METHODS:
                results[method].update({f"{k}_real_targets": v for k, v in values.items()})
        else:
            results[m].update(values)
    for m in METHODS:
        for key in ("pckh", "detection_rate", "pckh_detected"):
            results[m].setdefault(key, "disabled (params evaluation.pckh: false)")


def _inception(net, logits: dict, results: dict) -> None:
    for m in METHODS:
        if net is None or isinstance(net, Unavailable):
            results[m]["is"] = results[m]["mask_is"] = UNAVAILABLE_REASON
            continue
        for key, name in ((m, "is"), (f"{m}_mask", "mask_is")):
            score = inception_score(torch.cat(logits[key]))
            results[m][name] = round(score.mean, 4)
            results[m][f"{name}_std"] = round(score.std, 4)


def _mean(values: np.ndarray) -> float | str:
    finite = values[np.isfinite(values)]
    if len(finite) < len(values):
        return (
            f"inf ({len(values) - len(finite)} identical pairs)" if not len(finite) else round(float(finite.mean()), 4)
        )
    return round(float(values.mean()), 4)


def _aggregate(acc: _Accumulator, method: str, protocol: str) -> dict:
    out = {"ssim": round(float(acc.column(f"{method}.ssim_{protocol}").mean()), 4)}
    for p in SSIM_NAMES:
        out[f"ssim_{p}"] = round(float(acc.column(f"{method}.ssim_{p}").mean()), 4)
    for key in ("mask_ssim", "mask_ssim_condmask", "ssim_to_condition"):
        out[key] = round(float(acc.column(f"{method}.{key}").mean()), 4)
    out["psnr"] = _mean(acc.column(f"{method}.psnr"))
    for key in ("l1", "l1_to_condition"):
        out[key] = round(float(acc.column(f"{method}.{key}").mean()), 5)
    if f"{method}.lpips" in acc.per_pair:
        out["lpips"] = round(float(acc.column(f"{method}.lpips").mean()), 4)
    return out


def _per_pair_table(manifest: pa.Table, acc: _Accumulator) -> pa.Table:
    columns = {c: manifest.column(c) for c in ("pair_id", "from_id", "to_id", "person_id")}
    columns.update({name.replace(".", "_"): acc.column(name) for name in sorted(acc.per_pair)})
    return pa.table(columns)


def _parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()
