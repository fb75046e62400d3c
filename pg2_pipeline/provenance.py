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

# Project-relative paths (a folder means every file below it). Plumbing (params, paths, atomic
# writes, progress bars, summaries, tracking) is left out on purpose: it decides where and how
# results are recorded, not what they are, and listing it would rerun every stage for a new
# log line. ``PLUMBING`` names those modules; the import-graph test allows exactly them.
_P = "pg2_pipeline/"
_GROUND = (_P + "datasets.py", _P + "schemas.py", _P + "skeleton.py")
_STANDARD = (_P + "data/standard", _P + "data/annotations.py")  # the packaged standard files
_NETWORKS = tuple(_P + f"models/{m}.py" for m in ("__init__", "g1", "g2", "discriminator", "io"))
_VALIDATION_METRICS = tuple(
    _P + f"evaluate/{m}.py"
    for m in ("metrics", "lpips", "packaged", "safe_pickle", "fid", "inception_net", "feature_cache", "real_set")
)  # validation FID (stage 2's validate_fid) included
_TRAINING = (*_GROUND, _P + "inputs", _P + "imaging.py", _P + "runtime.py", _P + "viz.py", _P + "pose/maps.py",
             _P + "pose/draw.py", *_NETWORKS, _P + "models/losses.py", _P + "train/loop.py", _P + "train/precision.py",
             _P + "train/stage.py",
             _P + "train/samples.py", _P + "train/validation.py", _P + "distributed.py", _P + "models/sync_bn.py",
             *_VALIDATION_METRICS)  # fmt: skip
CODE_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "twin": (*_GROUND, *_STANDARD, _P + "data/names.py", _P + "data/twin"),
    "image_index": (*_GROUND, _P + "data/names.py", _P + "data/ingest.py", _P + "viz.py"),
    "keypoints": (*_GROUND, *_STANDARD, _P + "pose", _P + "viz.py"),
    "pairs": (*_GROUND, *_STANDARD, _P + "data/names.py", _P + "pairs", _P + "viz.py"),
    "manifests": (*_GROUND, _P + "inputs/manifests.py", _P + "inputs/cache.py"),
    "stage1": (*_TRAINING, _P + "train/stage1.py"),
    "stage2": (*_TRAINING, _P + "train/stage2.py", _P + "models/pg2.py"),
    "evaluation": (*_GROUND, _P + "inputs", _P + "imaging.py", _P + "runtime.py", _P + "viz.py", _P + "pose/maps.py",
                   _P + "pose/blazepose.py", *_NETWORKS, _P + "models/pg2.py", _P + "evaluate", _P + "registry",
                   _P + "distributed.py"),
    # scores files with the evaluation's metric code (its real set: the evaluation's, from the cache)
    "score": (*_GROUND, *_STANDARD, _P + "data/names.py", _P + "inputs/cache.py", _P + "runtime.py", _P + "viz.py",
              _P + "pose/maps.py", _P + "pose/blazepose.py",
              *(_P + f"evaluate/{m}.py" for m in ("feature_cache", "fid", "inception_net", "lpips", "metrics",
                                                   "packaged", "pckh", "pose_pool", "real_set", "safe_pickle")),
              _P + "score"),
}  # fmt: skip

# Imported by stages but not code dependencies (see above).
PLUMBING = tuple(
    _P + m
    for m in ("__init__.py", "config.py", "env.py", "fileio.py", "locks.py", "paths.py", "progress.py",
              "provenance.py", "summaries.py", "tracking.py", "typed.py")
)  # fmt: skip

# What the logged generator needs at load time (its code_paths): the PG² object, its networks,
# pose maps and the few ground-floor modules they import.
MODEL_SOURCE = (*_NETWORKS, _P + "models/pg2.py", _P + "pose/maps.py", _P + "skeleton.py", _P + "imaging.py",
                _P + "paths.py", _P + "env.py", _P + "fileio.py", _P + "__init__.py")  # fmt: skip


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
