"""Log, register and promote the stage-2 generator."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parent.parent
MODEL_CODE = Path(__file__).resolve().parent / "pyfunc_model.py"
CHAMPION = "champion"
# The source the logged model needs at load time, shipped with it (code_paths).
SHIPPED_SOURCE = ("__init__.py", "env.py", "models", "pose/__init__.py", "pose/keypoints.py", "pose/maps.py")
PIP_REQUIREMENTS = ["torch==2.13.0", "numpy", "safetensors", "mlflow==3.17.2"]


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    model_uri: str  # models:/name/version
    champion: bool
    reason: str


def _shipped_package(folder: Path) -> Path:
    """A minimal copy of the pg2_pipeline package (architectures + pose maps) for code_paths."""
    dst = folder / "pg2_pipeline"
    for rel in SHIPPED_SOURCE:
        src = PACKAGE_DIR / rel
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)
    return dst


def log_generator(stage1_dir: Path, stage2_dir: Path, image_size: tuple[int, int], metadata: dict) -> str:
    """Logs the generator in the active MLflow run; returns the model URI (runs:/... form)."""
    import mlflow
    from mlflow.models import infer_signature

    h, w = image_size
    example = {"condition": np.zeros((1, h, w, 3), np.uint8), "target_keypoints": np.full((1, 18, 2), -1, np.float32)}
    signature = infer_signature(example, np.zeros((1, h, w, 3), np.uint8))
    artifacts = {
        "g1_weights": str(stage1_dir / "g1.safetensors"), "g1_config": str(stage1_dir / "g1.json"),
        "g2_weights": str(stage2_dir / "g2.safetensors"), "g2_config": str(stage2_dir / "g2.json"),
    }  # fmt: skip
    # MLflow prints advice about type hints and input examples here: the signature is given
    # explicitly (a dict of tensors, which predict() type hints cannot express).
    with tempfile.TemporaryDirectory() as tmp:
        info = mlflow.pyfunc.log_model(
            name="generator",
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            code_paths=[str(_shipped_package(Path(tmp)))],
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
            metadata={"image_size": [h, w], **metadata},
        )
    return info.model_uri


def register(model_uri: str, name: str, beats_baseline: bool, reason: str, tags: dict[str, str]) -> Registration:
    """Registers ``model_uri`` under ``name``; gives it the ``champion`` alias only when
    ``beats_baseline`` (an earlier champion keeps the alias otherwise)."""
    import mlflow
    from mlflow import MlflowClient

    version = mlflow.register_model(model_uri, name, tags=tags)
    client = MlflowClient()
    client.set_model_version_tag(name, version.version, "champion_gate", reason)
    if beats_baseline:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return Registration(name, str(version.version), f"models:/{name}/{version.version}", beats_baseline, reason)


def _numeric(prefix: str, values: dict) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_numeric(name, value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            out[name] = float(value)
    return out


def publish_evaluation(params, paths, summary: dict, dagster_run_id: str | None = None) -> Registration:
    """The MLflow side of the evaluation stage: one run ``evaluation`` with every metric and
    report file, the logged generator, its registry version and the champion gate."""
    import json

    import mlflow

    from pg2_pipeline.train import tracking
    from pg2_pipeline.train.checkpoint import code_version

    metrics = summary["metrics"]
    folder = paths.asset_dir("evaluation")
    experiment_id = tracking.setup(params, paths.root)
    version = code_version(paths.root)
    stage2 = json.loads((paths.asset_dir("stage2") / "summary.json").read_text())
    tags = {"pg2.stage": "evaluation", "dagster.run_id": dagster_run_id or "none", "git.commit": version["git_commit"],
            "manifest.hash": stage2.get("manifest_hash", "unknown"), "stage2.mlflow_run_id": stage2.get("mlflow_run_id", "")}  # fmt: skip
    s2, copy = metrics["stage2"]["mask_ssim"], metrics["copy"]["mask_ssim"]
    beats = s2 > copy
    reason = (
        f"mask-SSIM {s2:.4f} {'>' if beats else '<='} copy baseline {copy:.4f}: "
        + ("promoted to @champion" if beats else "registered without the champion alias")
    )
    with mlflow.start_run(experiment_id=experiment_id, run_name="evaluation", tags=tags):
        mlflow.log_params({"pairs": metrics["pairs"], "ssim_protocol": metrics["ssim_protocol"], **tracking.flatten("evaluation", vars(params.evaluation))})
        mlflow.log_metrics(_numeric("", {m: metrics[m] for m in ("stage2", "stage1", "copy")}))
        for path in sorted((folder / "report").iterdir()):
            mlflow.log_artifact(str(path), artifact_path="report")
        mlflow.log_artifact(str(folder / "metrics.json"))
        mlflow.log_artifact(str(folder / "curves.csv"))
        image_size = tuple(json.loads((paths.asset_dir("stage2") / "g2.json").read_text())[k] for k in ("height", "width"))
        model_uri = log_generator(paths.asset_dir("stage1"), paths.asset_dir("stage2"), image_size,
                                  {"dataset": params.base.dataset, "mask_ssim": s2, "copy_mask_ssim": copy})  # fmt: skip
        registration = register(model_uri, params.mlflow.registered_model, beats, reason,
                                tags={"mask_ssim": f"{s2:.4f}", "copy_mask_ssim": f"{copy:.4f}", "dataset": params.base.dataset})  # fmt: skip
        mlflow.set_tag("registered_model", f"{registration.name}/{registration.version}")
    return registration
