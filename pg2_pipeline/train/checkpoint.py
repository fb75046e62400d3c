"""Self-describing training checkpoints, written atomically and loaded without pickle.

A checkpoint holds the models, the optimizers, the step, the RNG states, the resolved params,
the loss history, the code version and a *fingerprint*: the hash of everything that determines
the run (params of the stage and of its inputs, the training code). A restarted run resumes
from the newest checkpoint with the same fingerprint and discards the others, so a changed
param or code never resumes a stale run.

Files are ``torch.save`` dicts of tensors and plain Python values, loaded with
``torch.load(weights_only=True)`` (no arbitrary unpickling); final weights are also written as
safetensors.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

from pg2_pipeline import __version__
from pg2_pipeline.fileio import atomic_path

FORMAT = "pg2-checkpoint/1"
_NAME = re.compile(r"^step-(\d{8})\.pt$")
PACKAGE_DIR = Path(__file__).resolve().parent.parent
# The code a training run depends on: changing any of it makes old checkpoints stale.
TRAINING_CODE = ("models", "train", "pairs/loader.py", "pairs/cache.py", "pose/maps.py", "pose/keypoints.py")


def code_hash(parts: tuple[str, ...] = TRAINING_CODE) -> str:
    digest = hashlib.sha256()
    for part in parts:
        path = PACKAGE_DIR / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            digest.update(str(f.relative_to(PACKAGE_DIR)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def code_version(root: Path) -> dict[str, str]:
    return {"package": __version__, "git_commit": git_commit(root), "code_hash": code_hash()}


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.pt"


def save_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    """Writes ``state`` (must hold ``step`` and ``fingerprint``) atomically; returns the path."""
    path = checkpoint_path(folder, int(state["step"]))
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint")
    return state


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoint files in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_matching(folder: Path, fingerprint: str, map_location: str | torch.device = "cpu") -> tuple[Path | None, dict | None, list[Path]]:
    """The newest readable checkpoint with ``fingerprint`` and the files that do not match
    (other fingerprints, unreadable files): the caller removes those."""
    stale: list[Path] = []
    best: tuple[Path | None, dict | None] = (None, None)
    for _, path in reversed(checkpoints(folder)):
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
