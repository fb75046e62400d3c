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
* Validation every K steps on the held-out training identities (:mod:`.validation`): curves in
  ``validation.json`` and MLflow (``val_*``); params ``select`` exports the best validation
  step's networks instead of the last ones, and the summary records which.
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
from pg2_pipeline.distributed import Dist, launch, torchrun_command, world_size
from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.models import io
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.progress import bar as progress_bar
from pg2_pipeline.provenance import code_version, file_hash
from pg2_pipeline.runtime import keep_large_allocations, resolve_device
from pg2_pipeline.summaries import Selected, TrainingSummary
from pg2_pipeline.train.precision import PrecisionChoice, choose_precision
from pg2_pipeline.train.samples import sample_grid
from pg2_pipeline.train.stage import StageContext, TrainingStage, lr_factor
from pg2_pipeline.train.validation import KEEP_RULES, Selection, ValidationFID, Validator

SAMPLE_PAIRS = 6


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


def run_stage(
    stage_cls: type[TrainingStage], params, paths: ProjectPaths, *, dagster_run_id: str | None = None
) -> TrainingSummary:
    """What the asset calls: one process trains here; several (params ``nproc_per_node`` ×
    ``nnodes`` > 1) are launched with torchrun (:mod:`pg2_pipeline.distributed`)."""
    name, cfg = stage_cls.name, params.section(stage_cls.name)
    if world_size(cfg) == 1:
        return train(stage_cls, params, paths, dagster_run_id=dagster_run_id)
    launch(name, cfg, training_command(name, cfg, paths, dagster_run_id), paths.root,
           f"Rerun to resume from the last checkpoint in {paths.stage(name).checkpoints}")  # fmt: skip
    return summaries.read(paths.stage(name).summary, TrainingSummary, name)


def training_command(name: str, cfg, paths: ProjectPaths, dagster_run_id: str | None = None) -> list[str]:
    """The torchrun command of stage ``name`` (what every node of a multi-node run starts)."""
    args = [name, "--project", str(paths.root), *(["--dagster-run-id", dagster_run_id] if dagster_run_id else [])]
    return torchrun_command(name, cfg, "pg2_pipeline.train.worker", args)


def train(
    stage_cls: type[TrainingStage],
    params,
    paths: ProjectPaths,
    *,
    dist: Dist | None = None,
    dagster_run_id: str | None = None,
    progress: bool = True,
) -> TrainingSummary | None:
    """Trains ``stage_cls`` to ``params.<stage>.steps`` (resuming when possible) and writes
    weights, sample grids, history and summary under ``assets/<stage>/``. With ``dist`` (a
    torchrun worker) this process trains its share; rank 0 alone writes and returns the
    summary, the other ranks return None."""
    name = stage_cls.name
    cfg = params.section(name)
    main = dist is None or dist.is_main
    device = resolve_device(cfg.device)
    if dist is not None:
        device = dist.device(device)
    seed = params.base.seed if cfg.seed is None else cfg.seed
    keep_large_allocations()  # large batches would page-fault in on every step otherwise

    loader = PairLoader.from_manifest(
        paths, "train", cfg.batch_size, seed=seed, flip=params.pairs.flip_augmentation, device=device
    )
    if dist is not None:
        dist.local_batch(cfg.batch_size, f"{name}.batch_size")
        loader = loader.shard(dist.rank, dist.world)
    # precision / channels_last: params, or (``auto``) the fastest mode measured on this machine;
    # torchrun's rank 0 decides for every rank
    processes = 1 if dist is None else dist.world
    choice = choose_precision(stage_cls, params, paths, loader, device, processes=processes, measure=main)
    if dist is not None:
        choice = dist.from_main(choice)
    if main:
        print(choice.line(name), flush=True)
    rt = choice.runtime(device)
    rt.seed(seed)
    stage = stage_cls.build(StageContext(cfg, params, paths, (loader.height, loader.width), rt))
    run_params = {"base": asdict(params.base), name: asdict(cfg), "flip_augmentation": params.pairs.flip_augmentation}
    for key in LAUNCH_KEYS:  # how many processes ran it is not what the run computes
        run_params[name].pop(key)
    manifest_hash = file_hash(paths.manifest_table("train"))
    version = code_version(paths.root, name)
    fingerprint = hashlib.sha256(
        json.dumps(
            {**run_params, "manifest": manifest_hash, "code": version["code_hash"], "inputs": stage.inputs_hash()},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]

    record = (
        _Record(
            name, cfg, params, paths, rt, stage, fingerprint, version, manifest_hash, run_params, dagster_run_id, choice
        )
        if main
        else None
    )

    # ---- resume (every rank loads the same checkpoint; rank 0 sets the others aside)
    start_step, history, mlflow_run_id = 0, [], None
    last_good, state, foreign = io.latest_matching(
        paths.stage(name),
        fingerprint,
        map_location=rt.device,
        run_params=json.loads(json.dumps(run_params)),  # as the checkpoints hold them
        code_hash=version["code_hash"],
    )
    if state is not None:
        stage.load_state(state["models"], state["optimizers"])
        _set_rng_state(state["rng"], rt.device)
        start_step, history, mlflow_run_id = int(state["step"]), list(state["history"]), state.get("mlflow_run_id")
    if dist is not None:
        dist.barrier()  # everyone has read its checkpoint before any file moves
        stage.distribute(rt.device)
    if cfg.compile:
        stage.compile()
    if record is not None:
        record.set_aside(foreign, start_step, last_good)
        record.start(state, start_step, mlflow_run_id, loader)

    # ---- train
    started, pending = time.perf_counter(), []
    bar = progress_bar(cfg.steps, name, "step", enabled=progress and main, initial=start_step)
    try:
        if record is not None and start_step == 0:
            record.samples(0)
            record.validate(0)
        for step in range(start_step, cfg.steps):
            stage.scale_lr(lr_factor(cfg.lr_schedule, step, cfg.steps))
            result = stage.step(loader.batch(step).to(rt.device, memory_format=rt.memory_format))
            stage.update_averages(step + 1)
            if dist is not None:
                result = dist.mean(result)  # the global batch's losses, on every rank
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
            if record is None:
                continue
            pending.append((done, result, images_per_second))
            if done % cfg.log_every == 0 or done == cfg.steps:
                tracking.log_step_metrics(record.run_id, pending)
                pending = []
            if done % cfg.sample_every == 0 or done == cfg.steps:
                record.samples(done)
            if cfg.validate_every and (done % cfg.validate_every == 0 or done == cfg.steps):
                record.validate(done)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                last_good = record.checkpoint(done, history)
    except BaseException:
        bar.close()
        if record is not None:
            record.fail()
        raise
    bar.close()
    if record is None:
        return None
    return record.finish(history, start_step, time.perf_counter() - started, seed, loader)


LAUNCH_KEYS = ("nproc_per_node", "nnodes", "rdzv_endpoint", "backend")


class _Record:
    """What rank 0 (or the only process) writes: the MLflow run, sample grids, validation and
    the selection, checkpoints, and at the end weights, history and summary."""

    # what :meth:`set_aside` moved: the printed line, its entries and their folder
    set_aside_line, set_aside_entries, set_aside_to = "", (), ""

    def __init__(
        self, name, cfg, params, paths, rt, stage, fingerprint, version, manifest_hash, run_params, dagster_run_id,
        precision: PrecisionChoice,
    ):  # fmt: skip
        self.name, self.cfg, self.params, self.paths, self.rt, self.stage = name, cfg, params, paths, rt, stage
        self.files = paths.stage(name)
        self.fingerprint, self.version, self.manifest_hash, self.run_params = (
            fingerprint,
            version,
            manifest_hash,
            run_params,
        )
        self.dagster_run_id = dagster_run_id
        self.precision = precision
        self.sample_batch = _sample_batch(paths, rt.device)
        self.validator = _validator(name, cfg, params, paths, rt.device)
        self.selection = Selection(
            cfg.select, self.files, fingerprint, rt.device, getattr(cfg, "select_ssim_tolerance", 0.0)
        )
        if self.validator is not None and cfg.select in KEEP_RULES:
            self.selection.reference = self.validator(stage.reference_output)

    def set_aside(self, foreign: dict[Path, str], start_step: int, resumed: Path | None) -> None:
        """Moves aside the checkpoints this run cannot resume from (and a ``best.pt`` it cannot
        keep), never deleting them; says so in one line, and later in the MLflow run and the
        summary."""
        files, root = self.files, self.paths.root
        why = io.foreign_best(files, self.fingerprint, start_step)
        if why is not None:
            foreign = {**foreign, files.best_checkpoint: why}
        where = f"resuming from step {start_step} ({resumed.name})" if resumed else "starting at step 0"
        if not foreign:
            if resumed:
                print(f"{self.name}: {where}", flush=True)
            return
        folder, removed = io.set_aside(files, foreign)
        self.set_aside_to = str(folder.relative_to(root) if folder.is_relative_to(root) else folder)
        self.set_aside_entries = tuple(f"{p.name} {why}" for p, why in sorted(foreign.items()))
        self.set_aside_line = f"{where}; set aside in {self.set_aside_to}: {io.describe(foreign)}"
        print(f"{self.name}: {self.set_aside_line}", flush=True)
        for old in removed:
            print(f"{self.name}: removed the oldest set-aside folder {old.name} (the newest "
                  f"{io.SET_ASIDE_KEPT} are kept)", flush=True)  # fmt: skip

    def start(self, state: dict | None, start_step: int, mlflow_run_id: str | None, loader: PairLoader) -> None:
        import mlflow

        self.selection.restore(state["validation"] if state is not None else [], start_step)
        if start_step == 0 and self.files.samples.is_dir():  # grids of an earlier, different run
            for old in self.files.samples.glob("*.png"):
                old.unlink()
        self.experiment_id = tracking.setup(self.params, self.paths.root)
        tags = {
            "pg2.stage": self.name,
            "dagster.run_id": self.dagster_run_id or "none",
            "git.commit": self.version["git_commit"],
            "manifest.hash": self.manifest_hash,
            "code.hash": self.version["code_hash"],
            "checkpoint.fingerprint": self.fingerprint,
        }
        if mlflow_run_id is not None and not tracking.run_exists(mlflow_run_id):
            store = mlflow.get_tracking_uri()
            print(f"{self.name}: the checkpoint's MLflow run {mlflow_run_id} is not in {store}: a new run", flush=True)
            mlflow_run_id = None  # a checkpoint from another store (copied, or its run deleted)
        run_name = None if mlflow_run_id else self.name
        self.run_id = mlflow.start_run(
            run_id=mlflow_run_id, experiment_id=self.experiment_id, run_name=run_name, tags=tags
        ).info.run_id
        if self.set_aside_line:  # a tag: a resumed run's params are fixed, and several sessions may set aside
            mlflow.set_tag("checkpoints.set_aside", self.set_aside_line[:5000])
        if mlflow_run_id is None:
            mlflow.log_params(tracking.flatten("", self.run_params))
            launch = {k: getattr(self.cfg, k) for k in LAUNCH_KEYS}
            mlflow.log_params(
                {
                    "device": self.rt.device.type,
                    "autocast": str(self.rt.amp),
                    "precision.chosen": self.precision.mode,
                    "precision.how": self.precision.how,
                    "precision.reason": self.precision.reason[:500],
                    "height": loader.height,
                    "width": loader.width,
                    "train_pairs": len(loader.pairs),
                    "steps_per_epoch": loader.steps_per_epoch,
                    **tracking.flatten("launch", launch),
                }
            )

    def samples(self, step: int) -> None:
        import mlflow

        grid = sample_grid(self.sample_batch, self.stage.samples(self.sample_batch))
        fileio.write_png(self.files.sample(step), grid)
        fileio.write_png(self.files.latest_sample, grid)
        mlflow.log_artifact(str(self.files.sample(step)), artifact_path="samples")

    def validate(self, step: int) -> None:
        if self.validator is None:
            return
        if step == 0 and self.selection.reference and self.stage.starts_at_reference:
            metrics = dict(self.selection.reference)  # scored already, as G1's
        else:
            metrics = self.validator(self.stage.output)
        self.selection.record(step, metrics, self.stage)
        tracking.log_step_metrics(self.run_id, [(step, {f"val_{k}": v for k, v in metrics.items()}, None)])

    def checkpoint(self, step: int, history: list[dict]) -> Path:
        models, optimizers = self.stage.state()
        state = {
            "step": step,
            "stage": self.name,
            "fingerprint": self.fingerprint,
            "models": models,
            "optimizers": optimizers,
            "rng": _rng_state(self.rt.device),
            "params": json.loads(json.dumps(self.run_params)),
            "code_version": self.version,
            "history": history,
            "validation": self.selection.history,
            "mlflow_run_id": self.run_id,
        }
        return io.save_checkpoint(self.files, state)

    def fail(self) -> None:
        import mlflow

        mlflow.end_run(status="FAILED")

    def finish(
        self, history: list[dict], start_step: int, seconds: float, seed: int, loader: PairLoader
    ) -> TrainingSummary:
        import mlflow

        cfg, files, selection = self.cfg, self.files, self.selection
        selected = selection.apply(self.stage, cfg.steps)
        exported = self.stage.export(files)
        fileio.write_json(files.history, history)
        fileio.write_json(files.validation, selection.history)
        fileio.write_png(files.loss_curve, loss_curve(history, self.name))
        summary = TrainingSummary(
            stage=self.name,
            steps=cfg.steps,
            resumed_from_step=start_step,
            device=self.rt.device.type,
            autocast=self.rt.precision,
            batch_size=cfg.batch_size,
            image_size=(loader.height, loader.width),
            seconds_this_session=round(seconds, 2),
            images_per_second=round((cfg.steps - start_step) * cfg.batch_size / max(seconds, 1e-9), 2),
            first_losses=_losses(history[0]) if history else {},
            final_losses=_losses(history[-1]) if history else {},
            mlflow_run_id=self.run_id,
            mlflow_experiment_id=self.experiment_id,
            mlflow_run_url=tracking.run_url(self.experiment_id, self.run_id),
            tracking_uri=tracking.tracking_uri(self.params, self.paths.root),
            fingerprint=self.fingerprint,
            code_version=self.version,
            manifest_hash=self.manifest_hash,
            seed=seed,
            validation_pairs=self.validator.pairs if self.validator else 0,
            selected=Selected(**selected),
            final_validation=selection.history[-1] if selection.history else {},
            validation_reference=selection.reference,
            processes=world_size(cfg),
            precision=self.precision.record(),
            set_aside=self.set_aside_entries,
            set_aside_to=self.set_aside_to,
        )
        summaries.write(files.summary, summary)
        mlflow.log_metric("images_per_second_mean", summary.images_per_second)
        for mode, value in self.precision.images_per_second.items():
            mlflow.log_metric(f"precision_images_per_second_{mode}", value)
        mlflow.set_tags({"selected.rule": selected["rule"], "selected.step": str(selected["step"])})
        if selected["value"] is not None:
            mlflow.log_metric(f"selected_val_{selected['metric']}", selected["value"], step=selected["step"])
        for path in (files.loss_curve, files.history, files.validation, files.summary):
            mlflow.log_artifact(str(path))
        for path in exported:
            if path.suffix == ".safetensors":
                mlflow.log_artifact(str(path), artifact_path="weights")
        mlflow.end_run()
        return summary


def _validator(name: str, cfg, params, paths: ProjectPaths, device: torch.device) -> Validator | None:
    """The validation pairs' scorer, or None without validation (``validate_every: 0``)."""
    if not cfg.validate_every:
        return None
    if not Validator.pairs_of(paths):
        if cfg.select != "last":
            raise ValueError(
                f"params {name}.select is {cfg.select!r}, but the manifests have no validation pairs: set "
                "pairs.validation_identities > 0 and rematerialize pairs and manifests"
            )
        return None
    fid = ValidationFID(params, paths, device) if getattr(cfg, "validate_fid", False) else None
    return Validator(paths, device, fid=fid)


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
