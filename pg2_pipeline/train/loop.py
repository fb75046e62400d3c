"""The training stages: stage 1 trains G1 with the pose-mask L1; stage 2 freezes G1 and trains
G2 + D adversarially (steps.py holds the updates). Both share this loop:

* CUDA when available (params ``device``), else CPU; bf16 autocast where supported; channels_last;
  optional ``torch.compile``; seeded (deterministic on CPU).
* Checkpoints every K steps and at the end, atomically; a restarted run resumes from the newest
  checkpoint of the same fingerprint (train/checkpoint.py), so killing it at any point loses at
  most K steps and "K steps + kill + resume" equals an uninterrupted run bit for bit on CPU.
* A NaN/inf loss stops the run naming the step and the last good checkpoint.
* Progress bar with losses and images/s; sample grids every K steps; one MLflow run per stage
  (params, per-step losses, images/s, grids, final weights), resumed with the checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pg2_pipeline import fileio, viz
from pg2_pipeline.env import keep_large_allocations
from pg2_pipeline.models import build_discriminator, build_generator
from pg2_pipeline.pairs.loader import PairLoader
from pg2_pipeline.progress import bar as progress_bar
from pg2_pipeline.train import checkpoint as ckpt
from pg2_pipeline.train import tracking
from pg2_pipeline.train.samples import sample_grid
from pg2_pipeline.train.steps import Batch, make_optimizer, stage1_step, stage2_step

SAMPLE_PAIRS = 6


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass(frozen=True)
class StageFiles:
    folder: Path

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.folder / "samples"

    @property
    def latest_sample(self) -> Path:
        return self.folder / "samples" / "latest.png"

    def weights(self, model: str) -> Path:
        return self.folder / f"{model}.safetensors"

    def model_config(self, model: str) -> Path:
        return self.folder / f"{model}.json"

    @property
    def history(self) -> Path:
        return self.folder / "history.json"

    @property
    def loss_curve(self) -> Path:
        return self.folder / "losses.png"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"


# ------------------------------------------------------------------------------ devices


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("params ask for device 'cuda' but CUDA is not available (use 'auto' or 'cpu')")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # CPU: bf16 autocast is only fast with native bf16 instructions (AVX-512 BF16 / AMX); without
    # them it is emulated and slower than fp32.
    return cpu_has_native_bf16()


@functools.cache
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16" and bf16_supported(device):
        return torch.bfloat16
    return None


# ------------------------------------------------------------------------------ models


def load_generator(files: StageFiles, name: str, device: torch.device) -> torch.nn.Module:
    """A trained generator from a stage folder (``<name>.json`` config + safetensors)."""
    config_file, weights_file = files.model_config(name), files.weights(name)
    if not config_file.is_file() or not weights_file.is_file():
        raise FileNotFoundError(f"{weights_file} not found: materialize the stage that trains {name} first")
    config = json.loads(config_file.read_text())
    model = build_generator(name, **config)
    model.load_state_dict(load_file(weights_file, device=str(device)))
    return model.to(device)


def _save_model(files: StageFiles, name: str, model: torch.nn.Module, config: dict) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in _unwrap(model).state_dict().items()}
    with fileio.atomic_path(files.weights(name)) as tmp:
        save_file(state, str(tmp))
    fileio.write_json(files.model_config(name), config)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "_orig_mod", model)  # torch.compile wrapper


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------ the loop


def train_stage(stage: str, params, paths, *, dagster_run_id: str | None = None, progress: bool = True) -> dict:
    """Trains ``stage1`` or ``stage2`` to ``params.<stage>.steps`` (resuming when possible) and
    writes weights, sample grids, history and summary under ``assets/<stage>/``."""
    if stage not in ("stage1", "stage2"):
        raise ValueError(f"unknown stage '{stage}' (expected stage1 or stage2)")
    cfg = params.section(stage)
    files = StageFiles(paths.asset_dir(stage))
    device = resolve_device(cfg.device)
    amp = autocast_dtype(cfg.precision, device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    torch.manual_seed(params.base.seed)
    keep_large_allocations()  # large batches would page-fault in on every step otherwise
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    manifests_dir = paths.asset_dir("manifests")
    loader = PairLoader.from_manifest(manifests_dir, "train", cfg.batch_size, seed=params.base.seed,
                                      flip=params.pairs.flip_augmentation, device=device)  # fmt: skip
    height, width = loader.height, loader.width
    samples = _sample_batch(manifests_dir, device)

    # ---- models and optimizers
    if stage == "stage1":
        g1_config = {"height": height, "width": width, "base_channels": cfg.base_channels, "z_dim": cfg.z_dim}
        g1 = build_generator("g1", **g1_config).to(device, memory_format=memory_format)
        models = {"g1": g1}
        inputs_hash = ""
    else:
        g1 = load_generator(StageFiles(paths.asset_dir("stage1")), "g1", device).to(memory_format=memory_format)
        g1.requires_grad_(False)
        g2_config = {"height": height, "width": width, "base_channels": cfg.base_channels, "zero_init_output": cfg.zero_init_output}
        g2 = build_generator("g2", **g2_config).to(device, memory_format=memory_format)
        d = build_discriminator("dcgan", height=height, width=width, base_channels=cfg.d_base_channels).to(device, memory_format=memory_format)
        models = {"g2": g2, "d": d}
        inputs_hash = _file_hash(StageFiles(paths.asset_dir("stage1")).weights("g1"))
    optimizers = {name: make_optimizer(m.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type != "mps") for name, m in models.items()}

    manifest_hash = _file_hash(paths.manifest_table("train"))
    version = ckpt.code_version(paths.root)
    run_params = {"base": asdict(params.base), stage: asdict(cfg), "flip_augmentation": params.pairs.flip_augmentation}
    fingerprint = hashlib.sha256(
        json.dumps({**run_params, "manifest": manifest_hash, "code": version["code_hash"], "inputs": inputs_hash}, sort_keys=True).encode()
    ).hexdigest()[:16]

    # ---- resume
    start_step, history, mlflow_run_id = 0, [], None
    last_good, state, stale = ckpt.latest_matching(files.checkpoints, fingerprint, map_location=device)
    for path in stale:
        path.unlink()
    if state is not None:
        for name, model in models.items():
            model.load_state_dict(state["models"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state_all([t.cpu() for t in state["rng"]["cuda"]])
        start_step, history, mlflow_run_id = int(state["step"]), list(state["history"]), state.get("mlflow_run_id")
    run_models = {n: torch.compile(m) for n, m in models.items()} if cfg.compile else models

    # ---- tracking
    import mlflow

    experiment_id = tracking.setup(params, paths.root)
    tags = {"pg2.stage": stage, "dagster.run_id": dagster_run_id or "none", "git.commit": version["git_commit"],
            "manifest.hash": manifest_hash, "code.hash": version["code_hash"], "checkpoint.fingerprint": fingerprint}  # fmt: skip
    run = mlflow.start_run(run_id=mlflow_run_id, experiment_id=experiment_id, run_name=None if mlflow_run_id else stage, tags=tags)
    if mlflow_run_id is None:
        mlflow.log_params(tracking.flatten("", run_params))
        mlflow.log_params({"device": device.type, "autocast": str(amp), "height": height, "width": width,
                           "train_pairs": len(loader.pairs), "steps_per_epoch": loader.steps_per_epoch})  # fmt: skip
    mlflow_run_id = run.info.run_id

    def save(step: int) -> Path:
        return ckpt.save_checkpoint(files.checkpoints, {
            "step": step, "stage": stage, "fingerprint": fingerprint,
            "models": {n: _unwrap(m).state_dict() for n, m in models.items()},
            "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
            "rng": _rng_state(device), "params": json.loads(json.dumps(run_params)),
            "code_version": version, "history": history, "mlflow_run_id": mlflow_run_id,
        })  # fmt: skip

    def write_samples(step: int) -> None:
        grid = _render_samples(stage, samples, g1, models.get("g2"), amp)
        fileio.write_png(files.samples / f"step-{step:08d}.png", grid)
        fileio.write_png(files.latest_sample, grid)
        mlflow.log_artifact(str(files.samples / f"step-{step:08d}.png"), artifact_path="samples")

    # ---- train
    if start_step == 0 and files.samples.is_dir():  # grids of an earlier, different run
        for old in files.samples.glob("*.png"):
            old.unlink()
    started, pending = time.perf_counter(), []
    bar = progress_bar(cfg.steps, stage, "step", enabled=progress, initial=start_step)
    try:
        if start_step == 0:
            write_samples(0)
        for step in range(start_step, cfg.steps):
            batch = loader.batch(step).to(device, memory_format=memory_format)
            if stage == "stage1":
                result = stage1_step(run_models["g1"], optimizers["g1"], batch, autocast=amp)
            else:
                result = stage2_step(g1, run_models["g2"], run_models["d"], optimizers["g2"], optimizers["d"], batch,
                                     cfg.lambda_l1, d_variant=params.base.dataset, autocast=amp)  # fmt: skip
            done = step + 1
            bad = [k for k, v in result.items() if not math.isfinite(v)]
            if bad:
                where = str(last_good) if last_good else "none (no checkpoint written yet)"
                raise TrainingDivergedError(f"{stage}: {bad[0]} is {result[bad[0]]} at step {done}; last good checkpoint: {where}")
            history.append({"step": done, **{k: round(v, 6) for k, v in result.items()}})
            elapsed = time.perf_counter() - started
            images_per_second = (done - start_step) * cfg.batch_size / max(elapsed, 1e-9)
            bar.set_postfix({k: f"{v:.3f}" for k, v in result.items() if k.startswith("loss_") and k.count("_") <= 1} | {"img/s": f"{images_per_second:.1f}"}, refresh=False)
            bar.update(1)
            pending.append((done, result, images_per_second))
            if done % cfg.log_every == 0 or done == cfg.steps:
                _log_metrics(mlflow_run_id, pending)
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
    if stage == "stage1":
        _save_model(files, "g1", g1, g1_config)
    else:
        _save_model(files, "g2", models["g2"], g2_config)
        with fileio.atomic_path(files.weights("d")) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in _unwrap(models["d"]).state_dict().items()}, str(tmp))
    fileio.write_json(files.history, history)
    fileio.write_png(files.loss_curve, loss_curve(history, stage))
    summary = {
        "stage": stage, "steps": cfg.steps, "resumed_from_step": start_step, "device": device.type,
        "autocast": str(amp) if amp else "fp32", "batch_size": cfg.batch_size, "image_size": [height, width],
        "seconds_this_session": round(seconds, 2),
        "images_per_second": round((cfg.steps - start_step) * cfg.batch_size / max(seconds, 1e-9), 2),
        "final_losses": {k: v for k, v in history[-1].items() if k != "step"} if history else {},
        "first_losses": {k: v for k, v in history[0].items() if k != "step"} if history else {},
        "mlflow_run_id": mlflow_run_id, "mlflow_experiment_id": experiment_id,
        "mlflow_run_url": tracking.run_url(experiment_id, mlflow_run_id),
        "tracking_uri": tracking.tracking_uri(params, paths.root),
        "fingerprint": fingerprint, "code_version": version, "manifest_hash": manifest_hash,
    }  # fmt: skip
    fileio.write_json(files.summary, summary)
    mlflow.log_metric("images_per_second_mean", summary["images_per_second"])
    for path in (files.loss_curve, files.history, files.summary):
        mlflow.log_artifact(str(path))
    for name in ("g1",) if stage == "stage1" else ("g2", "d"):
        mlflow.log_artifact(str(files.weights(name)), artifact_path="weights")
    mlflow.end_run()
    return summary


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _log_metrics(run_id: str, pending: list[tuple[int, dict, float]]) -> None:
    """One synchronous batch write per log interval (cheaper than per-metric async calls)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step) for step, result, ips in pending for k, v in {**result, "images_per_second": ips}.items()]
    for start in range(0, len(metrics), 1000):  # the store's batch limit
        MlflowClient().log_batch(run_id, metrics=metrics[start : start + 1000])


def _sample_batch(manifests_dir: Path, device: torch.device) -> Batch:
    """A fixed batch of test pairs (spread over the manifest) shown in every sample grid."""
    loader = PairLoader.from_manifest(manifests_dir, "test", 1, shuffle=False, device=device)
    rows = np.linspace(0, len(loader.pairs) - 1, min(SAMPLE_PAIRS, len(loader.pairs))).astype(int)
    fixed = PairLoader(loader.cache, loader.pairs[rows], len(rows), shuffle=False, device=device)
    return fixed.batch(0)


@torch.no_grad()
def _render_samples(stage: str, batch: Batch, g1, g2, amp) -> np.ndarray:
    ctx = torch.autocast(device_type=batch.target.device.type, dtype=amp) if amp else torch.autocast("cpu", enabled=False)
    with ctx:
        coarse = g1(batch.condition, batch.target_map).float()
        outputs = {"G1": coarse}
        if stage == "stage2":
            outputs["G2"] = (coarse + g2(coarse, batch.condition)).float()
    return sample_grid(batch.condition, batch.target_map, batch.target, outputs)


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
