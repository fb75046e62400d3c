"""The Dagster code location: every asset of the pipeline, its checks, the whole-chain job and
the project resource. Loaded by ``workspace.yaml`` (``dagster dev``), by ``pg2 materialize``
(which ``dvc repro`` runs) and by the tests."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from pg2_pipeline.orchestration import data, evaluation, pose, scoring, training
from pg2_pipeline.orchestration.resources import ProjectResource

ASSETS = [
    data.twin,
    data.image_index,
    pose.keypoints,
    pose.pairs,
    training.manifests,
    training.stage1,
    training.stage2,
    evaluation.evaluation,
    scoring.score,
]

pipeline_job = define_asset_job(
    "pg2_pipeline",
    selection=AssetSelection.all(),
    description="Materializes the whole chain, from the synthetic twin (or your dataset) to the evaluation.",
    # one process for the whole chain: the stages are sequential, and on a 2-core machine one
    # process per step only adds start-up time (torch, mediapipe, mlflow imports)
    executor_def=in_process_executor,
)

defs = Definitions(
    assets=ASSETS,
    jobs=[pipeline_job],
    resources={"project": ProjectResource()},
)
