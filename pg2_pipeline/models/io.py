"""Model state on disk: final weights (safetensors + a JSON config that rebuilds the network)
and self-describing training checkpoints, both written atomically and loaded without pickle.

A checkpoint holds the models, the optimizers, the step, the RNG states, the resolved params,
the loss history, the code version and a *fingerprint*: the hash of everything that determines
the run (params of the stage and of its inputs, the training code). A restarted run resumes
from the newest checkpoint with the same fingerprint and moves the others aside
(:func:`set_aside`: ``checkpoints/set-aside/<time>/`` with the reason of each), so a changed
param or code never resumes a stale run and nothing is deleted without a word. Checkpoint
files are ``torch.save`` dicts of tensors and plain Python values, loaded with
``torch.load(weights_only=True)`` (no arbitrary unpickling).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pg2_pipeline import fileio
from pg2_pipeline.models import build_discriminator, build_generator
from pg2_pipeline.paths import StagePaths

CHECKPOINT_FORMAT = "pg2-checkpoint/1"
# The factory that rebuilds each saved network, and its default architecture name.
BUILDERS = {"g1": build_generator, "g2": build_generator, "d": build_discriminator}
DEFAULT_KIND = {"g1": "g1", "g2": "g2", "d": "dcgan"}


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself, not its ``torch.compile`` or DistributedDataParallel wrapper."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            return model
        model = inner


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}


# ------------------------------------------------------------------------------ weights


def save_model(
    files: StagePaths, name: str, model: nn.Module, config: dict[str, Any], kind: str | None = None
) -> list[Path]:
    """``<name>.safetensors`` and ``<name>.json`` (architecture ``kind`` and the constructor's
    arguments) in the stage folder; returns both paths."""
    with fileio.atomic_path(files.weights(name)) as tmp:
        save_file(cpu_state(model), str(tmp))
    fileio.write_json(files.model_config(name), {"kind": kind or DEFAULT_KIND[name], **config})
    return [files.weights(name), files.model_config(name)]


def model_config(files: StagePaths, name: str) -> dict[str, Any]:
    """The saved ``kind`` and constructor arguments of network ``name``."""
    path = files.model_config(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: materialize the stage that trains {name} first")
    return {"kind": DEFAULT_KIND[name], **json.loads(path.read_text())}


def load_model(files: StagePaths, name: str, device: str | torch.device = "cpu") -> nn.Module:
    """A trained network from a stage folder (``<name>.json`` config + safetensors)."""
    weights = files.weights(name)
    config = model_config(files, name)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: materialize the stage that trains {name} first")
    model = BUILDERS[name](config.pop("kind"), **config)
    model.load_state_dict(load_file(weights, device=str(device)))
    return model.to(device)


# ------------------------------------------------------------------------------ checkpoints


def save_checkpoint(files: StagePaths, state: dict[str, Any], path: Path | None = None) -> Path:
    """Writes ``state`` (must hold ``step`` and ``fingerprint``) atomically to the step's file
    (or ``path``); returns the path."""
    path = path or files.checkpoint(int(state["step"]))
    with fileio.atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    return state


def checkpoints(files: StagePaths) -> list[tuple[int, Path]]:
    """(step, path) of the stage's checkpoint files, oldest first."""
    folder = files.checkpoints
    if not folder.is_dir():
        return []
    found = [(step, p) for p in folder.iterdir() if (step := _step_of(files, p)) is not None]
    return sorted(found)


def _step_of(files: StagePaths, path: Path) -> int | None:
    stem = path.name.removeprefix("step-").removesuffix(".pt")
    if stem.isdigit() and files.checkpoint(int(stem)) == path:
        return int(stem)
    return None


def latest_matching(
    files: StagePaths,
    fingerprint: str,
    map_location: str | torch.device = "cpu",
    run_params: dict | None = None,
    code_hash: str | None = None,
) -> tuple[Path | None, dict | None, dict[Path, str]]:
    """The newest readable checkpoint with ``fingerprint``, and the files that must not be
    resumed from, each with the reason (unreadable, other params or code — named when the
    run's ``run_params`` and ``code_hash`` are given): the caller sets those aside."""
    foreign: dict[Path, str] = {}
    best: tuple[Path | None, dict | None] = (None, None)
    for _, path in reversed(checkpoints(files)):
        try:
            state = load_checkpoint(path, map_location)
        except Exception as exc:  # a file from another version or a broken one: never resume from it
            foreign[path] = unreadable(exc)
            continue
        if state.get("fingerprint") != fingerprint:
            foreign[path] = _other(state, run_params, code_hash)
        elif best[0] is None:
            best = (path, state)
    return best[0], best[1], foreign


def foreign_best(files: StagePaths, fingerprint: str, resumed_step: int) -> str | None:
    """Why ``best.pt`` (the selected networks so far) must not be kept by a run resuming at
    ``resumed_step``, or None when it may (or does not exist)."""
    path = files.best_checkpoint
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path, "cpu")
    except Exception as exc:
        return unreadable(exc)
    if state.get("fingerprint") != fingerprint:
        return "other params, code or inputs"
    if int(state["step"]) > resumed_step:  # the checkpoints after it were lost: it is recomputed
        return f"best of step {int(state['step'])}, after the step resumed from"
    return None


def unreadable(exc: Exception) -> str:
    text = str(exc)
    if "central directory" in text or "EOF" in text:  # a zip cut short: its index is at the end
        return "unreadable (truncated)"
    if "Weights only load failed" in text or "Unsupported global" in text:
        return "unreadable (holds objects the safe loader refuses)"
    first = text.strip().splitlines()[0][:120] if text.strip() else type(exc).__name__
    return f"unreadable ({first})"


def _other(state: dict, run_params: dict | None, code_hash: str | None) -> str:
    params = run_params is not None and state.get("params") != run_params
    code = code_hash is not None and (state.get("code_version") or {}).get("code_hash") != code_hash
    if params or code:
        return "other " + " and ".join(w for w, differs in (("params", params), ("code", code)) if differs)
    return "other inputs" if run_params is not None else "other params, code or inputs"


SET_ASIDE_KEPT = 3  # set-aside folders kept per stage; making a fourth removes the oldest


def set_aside(files: StagePaths, reasons: dict[Path, str]) -> tuple[Path, list[Path]]:
    """Moves the checkpoint files ``reasons`` names into a new ``checkpoints/set-aside/<time>/``
    with ``reasons.json``; removes the oldest set-aside folders beyond :data:`SET_ASIDE_KEPT`.
    Returns the new folder and the removed ones (the caller says so)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = files.set_aside / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = files.set_aside / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    for path in reasons:
        os.replace(path, folder / path.name)  # same file system: a rename, never a partial copy
    fileio.write_json(folder / "reasons.json", {p.name: why for p, why in reasons.items()})
    older = sorted(p for p in files.set_aside.iterdir() if p.is_dir())[:-SET_ASIDE_KEPT]
    for old in older:
        shutil.rmtree(old)
    return folder, older


def describe(reasons: dict[Path, str]) -> str:
    """``step-00000400.pt unreadable (truncated), step-00000600.pt other params``"""
    return ", ".join(f"{p.name} {why}" for p, why in sorted(reasons.items()))
