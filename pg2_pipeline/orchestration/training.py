"""Training assets: the manifests + tensor cache the loader reads, stage 1 (G1) and stage 2
(G2 + D)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pg2_pipeline import viz
from pg2_pipeline.orchestration.data import image_index, twin
from pg2_pipeline.orchestration.pose import keypoints, pairs
from pg2_pipeline.orchestration.resources import ProjectResource
from pg2_pipeline.summaries import TrainingSummary

GROUP = "training"


@asset(
    group_name=GROUP,
    # the images come from the dataset folder (the twin by default), the poses and pairs from
    # their assets: the same edges as the DVC stage's deps
    deps=[twin, image_index, keypoints, pairs],
    pool="pg2/manifests",
    kinds={"python", "parquet"},
    description=(
        "Self-describing Parquet manifests per split (pair id, both images, paths, person, both "
        "poses) and the tensor cache: every image of a split decoded once into a memory-mapped "
        "uint8 array, so training never decodes JPEGs in its hot loop."
    ),
)
def manifests(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.inputs.manifests import build_manifests

    paths = project.paths
    with project.writing(context):
        s = build_manifests(project.params(), paths)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(v.pairs for v in s.splits.values()),
            "splits": MetadataValue.json({k: vars(v) for k, v in s.splits.items()}),
            "image_size": MetadataValue.json(list(s.image_size)),
            "train_manifest": MetadataValue.path(str(paths.manifest_table("train"))),
            "test_manifest": MetadataValue.path(str(paths.manifest_table("test"))),
            "tensor_cache": MetadataValue.path(str(paths.cache.folder)),
        }
    )


def _training_metadata(s: TrainingSummary, paths) -> dict:
    files = paths.stage(s.stage)
    return {
        "steps": s.steps,
        "resumed_from_step": s.resumed_from_step,
        "checkpoints_set_aside": f"{s.set_aside_to}: {', '.join(s.set_aside)}" if s.set_aside else "none",
        "device": s.device,
        "precision": s.autocast,
        "images_per_second": s.images_per_second,
        "final_losses": MetadataValue.json(s.final_losses),
        "mlflow_run": MetadataValue.url(s.mlflow_run_url),
        "mlflow_run_id": s.mlflow_run_id,
        "selected": f"{s.selected.rule}, step {s.selected.step}",
        **{f"val_{k}": MetadataValue.float(v) for k, v in s.final_validation.items() if k != "step"},
        "weights": MetadataValue.path(str(files.folder)),
        "last_sample_grid": MetadataValue.md(viz.markdown_image(files.latest_sample, "samples")),
        "loss_curve": MetadataValue.md(viz.markdown_image(files.loss_curve, "losses")),
    }


@asset(
    group_name=GROUP,
    deps=[manifests],
    pool="pg2/stage1",
    kinds={"pytorch", "mlflow"},
    description=(
        "Stage 1 of PG²: G1 (residual U-Net with a fully connected bottleneck) trained with the "
        "pose-mask L1 to render the condition person in the target pose (coarse). Resumes from "
        "its last checkpoint; tracked in MLflow (run 'stage1')."
    ),
)
def stage1(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.train.loop import run_stage
    from pg2_pipeline.train.stage1 import Stage1

    with project.writing(context):
        s = run_stage(Stage1, project.params(), project.paths, dagster_run_id=context.run.run_id)
    return MaterializeResult(metadata=_training_metadata(s, project.paths))


@asset(
    group_name=GROUP,
    deps=[manifests, stage1],
    pool="pg2/stage2",
    kinds={"pytorch", "mlflow"},
    description=(
        "Stage 2 of PG²: G2 (U-Net predicting a difference map added to G1's output) trained "
        "adversarially against a DCGAN discriminator, G1 frozen. Tracked in MLflow (run 'stage2')."
    ),
)
def stage2(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.train.loop import run_stage
    from pg2_pipeline.train.stage2 import Stage2

    with project.writing(context):
        s = run_stage(Stage2, project.params(), project.paths, dagster_run_id=context.run.run_id)
    return MaterializeResult(metadata=_training_metadata(s, project.paths))
