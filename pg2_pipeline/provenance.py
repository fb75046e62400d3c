"""What made an output: the code each stage depends on, its hash, the git commit, file hashes.

:data:`CODE_DEPENDENCIES` is the one map from a pipeline stage to the package code whose change
must rerun it. ``dvc.yaml`` lists the same paths as the stage's code deps, checkpoints of a
training stage are fingerprinted with the hash of its code, and a test checks both against this
map and against the stage's real import graph. :data:`MODEL_SOURCE` is the code the logged MLflow
model ships and imports at load time (tested the same way).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from pg2_pipeline import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name

# Project-relative paths (a folder means every .py below it). Plumbing (params, paths, atomic
# writes, progress bars, summaries, tracking) is left out on purpose: it decides where and how
# results are recorded, not what they are, and listing it would rerun every stage for a new
# log line. ``PLUMBING`` names those modules; the import-graph test allows exactly them.
_DATA = ("pg2_pipeline/data/names.py", "pg2_pipeline/datasets.py", "pg2_pipeline/skeleton.py")
_SCHEMAS = ("pg2_pipeline/schemas.py",)
_INPUTS = ("pg2_pipeline/inputs", "pg2_pipeline/pose/maps.py", "pg2_pipeline/imaging.py")
_MODELS = ("pg2_pipeline/models", "pg2_pipeline/runtime.py")
CODE_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "twin": (*_DATA, "pg2_pipeline/data/twin", "pg2_pipeline/data/annotations.py", *_SCHEMAS, "pg2_pipeline/viz.py"),
    "image_index": (*_DATA, "pg2_pipeline/data/ingest.py", *_SCHEMAS, "pg2_pipeline/viz.py"),
    "keypoints": (*_DATA, "pg2_pipeline/pose", "pg2_pipeline/data/annotations.py", *_SCHEMAS, "pg2_pipeline/viz.py"),
    "pairs": (*_DATA, "pg2_pipeline/pairs", "pg2_pipeline/data/annotations.py", *_SCHEMAS, "pg2_pipeline/viz.py"),
    "manifests": (*_DATA, *_INPUTS, *_SCHEMAS),
    "stage1": (*_DATA, *_INPUTS, *_SCHEMAS, *_MODELS, "pg2_pipeline/train", "pg2_pipeline/pose/draw.py", "pg2_pipeline/viz.py"),
    "stage2": (*_DATA, *_INPUTS, *_SCHEMAS, *_MODELS, "pg2_pipeline/train", "pg2_pipeline/pose/draw.py", "pg2_pipeline/viz.py"),
    "evaluation": (*_DATA, *_INPUTS, *_SCHEMAS, *_MODELS, "pg2_pipeline/evaluate", "pg2_pipeline/registry",
                   "pg2_pipeline/pose/blazepose.py", "pg2_pipeline/viz.py"),
}  # fmt: skip

# Imported by stages but not code dependencies (see above).
PLUMBING = (
    "pg2_pipeline/__init__.py", "pg2_pipeline/config.py", "pg2_pipeline/env.py", "pg2_pipeline/fileio.py",
    "pg2_pipeline/paths.py", "pg2_pipeline/progress.py", "pg2_pipeline/provenance.py", "pg2_pipeline/summaries.py",
    "pg2_pipeline/tracking.py", "pg2_pipeline/typed.py",
)  # fmt: skip

# What the logged generator needs at load time (its code_paths): the networks, the PG² object,
# pose maps and the few ground-floor modules they import.
MODEL_SOURCE = (
    "pg2_pipeline/__init__.py", "pg2_pipeline/env.py", "pg2_pipeline/imaging.py", "pg2_pipeline/paths.py",
    "pg2_pipeline/fileio.py", "pg2_pipeline/skeleton.py", "pg2_pipeline/models", "pg2_pipeline/pose/__init__.py",
    "pg2_pipeline/pose/maps.py",
)  # fmt: skip


def files_of(parts: tuple[str, ...], root: Path = PACKAGE_DIR.parent) -> list[Path]:
    """The .py files of project-relative paths (folders recursively), sorted, no caches."""
    out: set[Path] = set()
    for part in parts:
        path = root / part
        out.update(p for p in path.rglob("*.py") if "__pycache__" not in p.parts) if path.is_dir() else out.add(path)
    return sorted(out)


def code_hash(stage: str) -> str:
    """Short hash of the code ``stage`` depends on (names and contents)."""
    if stage not in CODE_DEPENDENCIES:
        raise KeyError(f"unknown stage '{stage}' (expected one of {', '.join(CODE_DEPENDENCIES)})")
    digest = hashlib.sha256()
    for f in files_of(CODE_DEPENDENCIES[stage]):
        digest.update(str(f.relative_to(PACKAGE_DIR.parent)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def code_version(root: Path, stage: str) -> dict[str, str]:
    """Package version, git commit and the code hash of ``stage``."""
    return {"package": __version__, "git_commit": git_commit(root), "code_hash": code_hash(stage)}


def file_hash(path: Path) -> str:
    """Short SHA-256 of a file's bytes (manifests, weights an output was made from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
