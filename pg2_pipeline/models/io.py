"""Model state on disk: final weights (safetensors + a JSON config that rebuilds the network)
and self-describing training checkpoints, both written atomically and loaded without pickle.

A checkpoint holds the models, the optimizers, the step, the RNG states, the resolved params,
the loss history, the code version and a *fingerprint*: the hash of everything that determines
the run (params of the stage and of its inputs, the training code). A restarted run resumes
from the newest checkpoint with the same fingerprint and discards the others, so a changed
param or code never resumes a stale run. Checkpoint files are ``torch.save`` dicts of tensors
and plain Python values, loaded with ``torch.load(weights_only=True)`` (no arbitrary
unpickling).
"""

from __future__ import annotations

import json
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
    files: StagePaths, fingerprint: str, map_location: str | torch.device = "cpu"
) -> tuple[Path | None, dict | None, list[Path]]:
    """The newest readable checkpoint with ``fingerprint`` and the files that do not match
    (other fingerprints, unreadable files): the caller removes those."""
    stale: list[Path] = []
    best: tuple[Path | None, dict | None] = (None, None)
    for _, path in reversed(checkpoints(files)):
        try:
            state = load_checkpoint(path, map_location)
        except Exception:  # a file from another version or a broken one: never resume from it
            stale.append(path)
            continue
        if state.get("fingerprint") != fingerprint:
            stale.append(path)
        elif best[0] is None:
            best = (path, state)
    return best[0], best[1], stale
