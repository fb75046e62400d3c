"""The evaluation asset: scores, the model registry and the champion gate."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pg2_pipeline import viz
from pg2_pipeline.orchestration.resources import ProjectResource
from pg2_pipeline.orchestration.training import manifests, stage1, stage2

GROUP = "evaluation"


@asset(
    group_name=GROUP,
    deps=[manifests, stage1, stage2],
    pool="pg2/evaluation",
    kinds={"pytorch", "mlflow"},
    description=(
        "Generates the test pairs with stage 2, stage 1 and the copy baseline and scores them "
        "under named protocols (SSIM pg2/gaussian/win51, mask-SSIM, PSNR, L1, LPIPS, FID, IS "
        "when weights are given, PCKh). Registers the stage-2 generator in MLflow; the blocking "
        "check gives it the 'champion' alias only when it beats the copy baseline on mask-SSIM."
    ),
    check_specs=[
        AssetCheckSpec(
            "champion_gate",
            asset="evaluation",
            blocking=True,
            description="The new model version beats 'copy the condition image' on mask-SSIM (then it is @champion).",
        ),
    ],
)
def evaluation(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.evaluate.stage import run_evaluation
    from pg2_pipeline.registry.publish import publish_evaluation

    params, paths = project.params(), project.paths
    with project.writing(context):
        summary = run_evaluation(params, paths)
        reg = publish_evaluation(params, paths, summary, dagster_run_id=context.run.run_id)
    files, m = paths.evaluation, summary.metrics
    return MaterializeResult(
        metadata={
            "pairs": m.pairs,
            "mask_ssim": MetadataValue.json({k: m.method(k)["mask_ssim"] for k in m.METHODS}),
            "ssim": MetadataValue.json({k: m.method(k)["ssim"] for k in m.METHODS}),
            "table": MetadataValue.md(files.table.read_text()),
            "examples": MetadataValue.md(viz.markdown_image(files.examples, "best / median / worst")),
            "curves": MetadataValue.md(viz.markdown_image(files.curves, "metrics over checkpoints")),
            "model": f"{reg.name} version {reg.version}",
            "model_alias": "champion" if reg.champion else "none (gate not passed)",
            "model_uri": reg.model_uri,
            # flat float keys: the UI's Plots tab draws them across materializations
            **{f"{metric}/{method}": MetadataValue.float(v) for (method, metric), v in m.numeric().items()},
        },
        check_results=[
            AssetCheckResult(
                check_name="champion_gate",
                passed=reg.champion,
                severity=AssetCheckSeverity.ERROR,
                description=reg.reason,
                metadata={"model_version": reg.version, "metrics": MetadataValue.json(m.stage2)},
            )
        ],
    )
