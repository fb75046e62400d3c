"""The one training loop, for every stage object (:mod:`.stage1`: G1 with the pose-mask L1;
:mod:`.stage2`: G1 frozen, G2 + D adversarially). The stage objects hold the networks and their
updates; this loop owns the rest:

* CUDA when available (params ``device``), else CPU; bf16 autocast where supported; channels_last;
  optional ``torch.compile``; seeded (deterministic on CPU).
* Checkpoints every K steps and at the end, atomically; a restarted run resumes from the newest
  checkpoint of the same fingerprint (:mod:`pg2_pipeline.models.io`), so killing it at any point
  loses at most K steps and "K steps + kill + resume" equals an uninterrupted run bit for bit on
  CPU.
* A NaN/inf loss stops the run naming the step and the last good checkpoint.
* Progress bar with losses and images/s; sample grids every K steps; one MLflow run per stage
  (params, per-step losses, images/s, grids, final weights), resumed with the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from pg2_pipeline import fileio, summaries, tracking, viz
from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.models import io
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.progress import bar as progress_bar
from pg2_pipeline.provenance import code_version, file_hash
from pg2_pipeline.runtime import Runtime, keep_large_allocations
from pg2_pipeline.summaries import TrainingSummary
from pg2_pipeline.train.samples import sample_grid
from pg2_pipeline.train.stage import StageContext, TrainingStage

SAMPLE_PAIRS = 6


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


def train(
    stage_cls: type[TrainingStage],
    params,
    paths: ProjectPaths,
    *,
    dagster_run_id: str | None = None,
    progress: bool = True,
) -> TrainingSummary:
    """Trains ``stage_cls`` to ``params.<stage>.steps`` (resuming when possible) and writes
    weights, sample grids, history and summary under ``assets/<stage>/``."""
    name = stage_cls.name
    cfg = params.section(name)
    files = paths.stage(name)
    rt = Runtime.resolve(cfg.device, cfg.precision, cfg.channels_last)
    rt.seed(params.base.seed)
    keep_large_allocations()  # large batches would page-fault in on every step otherwise

    loader = PairLoader.from_manifest(
        paths, "train", cfg.batch_size, seed=params.base.seed, flip=params.pairs.flip_augmentation, device=rt.device
    )
    samples = _sample_batch(paths, rt.device)
    stage = stage_cls.build(StageContext(cfg, params, paths, (loader.height, loader.width), rt))

    manifest_hash = file_hash(paths.manifest_table("train"))
    version = code_version(paths.root, name)
    run_params = {"base": asdict(params.base), name: asdict(cfg), "flip_augmentation": params.pairs.flip_augmentation}
    fingerprint = hashlib.sha256(
        json.dumps(
            {**run_params, "manifest": manifest_hash, "code": version["code_hash"], "inputs": stage.inputs_hash()},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]

    # ---- resume
    start_step, history, mlflow_run_id = 0, [], None
    last_good, state, stale = io.latest_matching(files, fingerprint, map_location=rt.device)
    for path in stale:
        path.unlink()
    if state is not None:
        stage.load_state(state["models"], state["optimizers"])
        _set_rng_state(state["rng"], rt.device)
        start_step, history, mlflow_run_id = int(state["step"]), list(state["history"]), state.get("mlflow_run_id")
    if cfg.compile:
        stage.compile()

    # ---- tracking
    import mlflow

    experiment_id = tracking.setup(params, paths.root)
    tags = {
        "pg2.stage": name,
        "dagster.run_id": dagster_run_id or "none",
        "git.commit": version["git_commit"],
        "manifest.hash": manifest_hash,
        "code.hash": version["code_hash"],
        "checkpoint.fingerprint": fingerprint,
    }
    run = mlflow.start_run(
        run_id=mlflow_run_id, experiment_id=experiment_id, run_name=None if mlflow_run_id else name, tags=tags
    )
    if mlflow_run_id is None:
        mlflow.log_params(tracking.flatten("", run_params))
        mlflow.log_params(
            {
                "device": rt.device.type,
                "autocast": str(rt.amp),
                "height": loader.height,
                "width": loader.width,
                "train_pairs": len(loader.pairs),
                "steps_per_epoch": loader.steps_per_epoch,
            }
        )
    mlflow_run_id = run.info.run_id

    def save(step: int) -> Path:
        models, optimizers = stage.state()
        return io.save_checkpoint(
            files,
            {
                "step": step,
                "stage": name,
                "fingerprint": fingerprint,
                "models": models,
                "optimizers": optimizers,
                "rng": _rng_state(rt.device),
                "params": json.loads(json.dumps(run_params)),
                "code_version": version,
                "history": history,
                "mlflow_run_id": mlflow_run_id,
            },
        )

    def write_samples(step: int) -> None:
        grid = sample_grid(samples, stage.samples(samples))
        fileio.write_png(files.sample(step), grid)
        fileio.write_png(files.latest_sample, grid)
        mlflow.log_artifact(str(files.sample(step)), artifact_path="samples")

    # ---- train
    if start_step == 0 and files.samples.is_dir():  # grids of an earlier, different run
        for old in files.samples.glob("*.png"):
            old.unlink()
    started, pending = time.perf_counter(), []
    bar = progress_bar(cfg.steps, name, "step", enabled=progress, initial=start_step)
    try:
        if start_step == 0:
            write_samples(0)
        for step in range(start_step, cfg.steps):
            result = stage.step(loader.batch(step).to(rt.device, memory_format=rt.memory_format))
            done = step + 1
            bad = [k for k, v in result.items() if not math.isfinite(v)]
            if bad:
                where = str(last_good) if last_good else "none (no checkpoint written yet)"
                raise TrainingDivergedError(
                    f"{name}: {bad[0]} is {result[bad[0]]} at step {done}; last good checkpoint: {where}"
                )
            history.append({"step": done, **{k: round(v, 6) for k, v in result.items()}})
            images_per_second = (done - start_step) * cfg.batch_size / max(time.perf_counter() - started, 1e-9)
            losses = {k: f"{v:.3f}" for k, v in result.items() if k.startswith("loss_") and k.count("_") <= 1}
            bar.set_postfix(losses | {"img/s": f"{images_per_second:.1f}"}, refresh=False)
            bar.update(1)
            pending.append((done, result, images_per_second))
            if done % cfg.log_every == 0 or done == cfg.steps:
                tracking.log_step_metrics(mlflow_run_id, pending)
                pending = []
            if done % cfg.sample_every == 0 or done == cfg.steps:
                write_samples(done)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                last_good = save(done)
    except BaseException:
        bar.close()
        mlflow.end_run(status="FAILED")
        raise
    bar.close()
    seconds = time.perf_counter() - started

    # ---- outputs
    exported = stage.export(files)
    fileio.write_json(files.history, history)
    fileio.write_png(files.loss_curve, loss_curve(history, name))
    summary = TrainingSummary(
        stage=name,
        steps=cfg.steps,
        resumed_from_step=start_step,
        device=rt.device.type,
        autocast=rt.precision,
        batch_size=cfg.batch_size,
        image_size=(loader.height, loader.width),
        seconds_this_session=round(seconds, 2),
        images_per_second=round((cfg.steps - start_step) * cfg.batch_size / max(seconds, 1e-9), 2),
        first_losses=_losses(history[0]) if history else {},
        final_losses=_losses(history[-1]) if history else {},
        mlflow_run_id=mlflow_run_id,
        mlflow_experiment_id=experiment_id,
        mlflow_run_url=tracking.run_url(experiment_id, mlflow_run_id),
        tracking_uri=tracking.tracking_uri(params, paths.root),
        fingerprint=fingerprint,
        code_version=version,
        manifest_hash=manifest_hash,
    )
    summaries.write(files.summary, summary)
    mlflow.log_metric("images_per_second_mean", summary.images_per_second)
    for path in (files.loss_curve, files.history, files.summary):
        mlflow.log_artifact(str(path))
    for path in exported:
        if path.suffix == ".safetensors":
            mlflow.log_artifact(str(path), artifact_path="weights")
    mlflow.end_run()
    return summary


def _losses(entry: dict) -> dict[str, float]:
    return {k: v for k, v in entry.items() if k != "step"}


def _rng_state(device: torch.device) -> dict:
    state: dict = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])


def _sample_batch(paths: ProjectPaths, device: torch.device) -> Batch:
    """A fixed batch of test pairs (spread over the manifest) shown in every sample grid."""
    loader = PairLoader.from_manifest(paths, "test", 1, shuffle=False, device=device)
    rows = np.linspace(0, len(loader.pairs) - 1, min(SAMPLE_PAIRS, len(loader.pairs))).astype(int)
    return loader.subset(rows).batch(0)


def loss_curve(history: list[dict], stage: str) -> np.ndarray:
    plt = viz.pyplot()
    keys = [k for k in (history[0] if history else {}) if k.startswith("loss_")]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    steps = [h["step"] for h in history]
    for k in keys:
        values = np.array([h[k] for h in history])
        window = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=k, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.set_title(f"{stage} losses (moving average)", fontsize=9)
    ax.legend(fontsize=7)
    return viz.figure_rgb(fig)
