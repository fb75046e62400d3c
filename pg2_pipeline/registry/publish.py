"""Log, register and promote the stage-2 generator (the champion rule itself is the
evaluation's: :func:`pg2_pipeline.evaluate.stage.champion_gate`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pg2_pipeline import summaries, tracking
from pg2_pipeline.paths import ProjectPaths, StagePaths
from pg2_pipeline.provenance import MODEL_SOURCE, code_version, files_of
from pg2_pipeline.skeleton import NUM_JOINTS
from pg2_pipeline.summaries import EvaluationSummary, Registration, TrainingSummary

MODEL_CODE = Path(__file__).resolve().parent / "pyfunc_model.py"
CHAMPION = "champion"
PIP_REQUIREMENTS = ["torch==2.13.0", "numpy", "safetensors", "mlflow==3.17.2"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _shipped_package(folder: Path) -> Path:
    """A minimal copy of the pg2_pipeline package (:data:`MODEL_SOURCE`) for code_paths."""
    for src in files_of(MODEL_SOURCE):
        target = folder / src.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return folder / "pg2_pipeline"


def _stage_artifact(folder: Path, stage: StagePaths, name: str) -> str:
    """A folder with only network ``name``'s weights and config (not the checkpoints)."""
    out = StagePaths(folder / name)
    out.folder.mkdir(parents=True)
    for src, dst in ((stage.weights(name), out.weights(name)), (stage.model_config(name), out.model_config(name))):
        shutil.copy2(src, dst)
    return str(out.folder)


def log_generator(paths: ProjectPaths, image_size: tuple[int, int], metadata: dict) -> str:
    """Logs the generator in the active MLflow run; returns the model URI (runs:/... form)."""
    import mlflow
    from mlflow.models import infer_signature

    h, w = image_size
    example = {
        "condition": np.zeros((1, h, w, 3), np.uint8),
        "target_keypoints": np.full((1, NUM_JOINTS, 2), -1, np.float32),
    }
    signature = infer_signature(example, np.zeros((1, h, w, 3), np.uint8))
    # MLflow prints advice about type hints and input examples here: the signature is given
    # explicitly (a dict of tensors, which predict() type hints cannot express).
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {
            "stage1": _stage_artifact(Path(tmp) / "artifacts", paths.stage("stage1"), "g1"),
            "stage2": _stage_artifact(Path(tmp) / "artifacts", paths.stage("stage2"), "g2"),
        }
        info = mlflow.pyfunc.log_model(
            name="generator",
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            code_paths=[str(_shipped_package(Path(tmp) / "code"))],
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
            metadata={"image_size": [h, w], **metadata},
        )
    return info.model_uri


def register(
    model_uri: str, name: str, gate: summaries.ChampionGate, tags: dict[str, str], content: str | None = None
) -> Registration:
    """Registers ``model_uri`` under ``name``; gives it the ``champion`` alias only when the gate
    passed (an earlier champion keeps the alias otherwise). ``content``: a key of what is
    registered (:func:`content_key`): when a version with that key exists — registered by a run
    killed before it finished — that version is taken instead of adding a second one."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    version = _version_with_content(client, name, content) if content else None
    if version is None:
        version = mlflow.register_model(model_uri, name, tags={**tags, **({CONTENT_TAG: content} if content else {})})
    client.set_model_version_tag(name, version.version, "champion_gate", gate.reason)
    if gate.passed:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return Registration(name, str(version.version), f"models:/{name}/{version.version}", gate.passed, gate.reason)


CONTENT_TAG = "pg2.content"  # model version tag: content_key() of what it holds


def content_key(paths: ProjectPaths, summary: EvaluationSummary) -> str:
    """Hash of the generator's weights and configs (G1, G2) and of the metrics and gate that
    decide its registration: the same evaluation of the same model gives the same key."""
    digest = hashlib.sha256()
    for stage, net in (("stage1", "g1"), ("stage2", "g2")):
        files = paths.stage(stage)
        digest.update(files.weights(net).read_bytes())
        digest.update(files.model_config(net).read_bytes())
    decided = {"metrics": dataclasses.asdict(summary.metrics), "gate": dataclasses.asdict(summary.gate)}
    digest.update(json.dumps(decided, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def _version_with_content(client, name: str, content: str):
    try:
        found = client.search_model_versions(f"name = '{name}' and tags.`{CONTENT_TAG}` = '{content}'")
    except Exception:  # no such registered model yet
        return None
    return max(found, key=lambda v: int(v.version)) if found else None


def publish_evaluation(
    params, paths: ProjectPaths, summary: EvaluationSummary, dagster_run_id: str | None = None
) -> Registration:
    """The MLflow side of the evaluation stage: one run ``evaluation`` with every metric and
    report file, the logged generator, its registry version and the champion gate. Writes
    ``report/registration.json``."""
    import mlflow

    metrics, gate = summary.metrics, summary.gate
    files = paths.evaluation
    experiment_id = tracking.setup(params, paths.root)
    version = code_version(paths.root, "evaluation")
    stage1 = summaries.read(paths.stage("stage1").summary, TrainingSummary, "stage1")
    stage2 = summaries.read(paths.stage("stage2").summary, TrainingSummary, "stage2")
    selected = {f"{s.stage}.selected": f"{s.selected.rule} (step {s.selected.step})" for s in (stage1, stage2)}
    # What the model was trained on, for whoever uses it (pg2 generate, pg2 serve): real photos or
    # the synthetic twin (whose people a real photo will come out looking like), profile, steps.
    trained_on = {
        "data": "twin" if paths.resolve(params.image_index.root).resolve() == paths.twin_dataset.resolve() else "real",
        "profile": params.base.profile,
        **{f"{s.stage}.steps": str(s.steps) for s in (stage1, stage2)},
    }
    tags = {
        "pg2.stage": "evaluation",
        "dagster.run_id": dagster_run_id or "none",
        "git.commit": version["git_commit"],
        "manifest.hash": stage2.manifest_hash,
        "stage2.mlflow_run_id": stage2.mlflow_run_id,
        **selected,
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name="evaluation", tags=tags):
        mlflow.log_params(
            {
                "pairs": metrics.pairs,
                "ssim_protocol": metrics.ssim_protocol,
                **tracking.flatten("evaluation", vars(params.evaluation)),
            }
        )
        mlflow.log_metrics({f"{method}.{metric}": value for (method, metric), value in metrics.numeric().items()})
        for path in sorted(files.report.iterdir()):
            mlflow.log_artifact(str(path), artifact_path="report")
        mlflow.log_artifact(str(files.metrics))
        mlflow.log_artifact(str(files.curves_csv))
        model_uri = log_generator(
            paths,
            tuple(stage2.image_size),
            {
                "dataset": params.base.dataset,
                **trained_on,
                gate.metric: gate.value,
                f"{gate.baseline}_{gate.metric}": gate.baseline_value,
                "selected": selected,
            },
        )
        tags = {
            gate.metric: f"{gate.value:.4f}",
            f"{gate.baseline}_{gate.metric}": f"{gate.baseline_value:.4f}",
            "dataset": params.base.dataset,
            "stage2.variant": params.stage2.variant,
            **trained_on,
            **selected,
        }
        key = content_key(paths, summary)
        registration = register(model_uri, params.mlflow.registered_model, gate, tags=tags, content=key)
        mlflow.set_tag("registered_model", f"{registration.name}/{registration.version}")
    summaries.write(files.registration, registration)
    return registration
