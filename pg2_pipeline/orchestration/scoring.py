"""The score asset: our saved test outputs and other methods' outputs under every named protocol."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pg2_pipeline.orchestration.evaluation import evaluation
from pg2_pipeline.orchestration.resources import ProjectResource
from pg2_pipeline.orchestration.training import manifests

GROUP = "evaluation"


@asset(
    group_name=GROUP,
    deps=[manifests, evaluation],
    pool="pg2/score",
    kinds={"pytorch", "mlflow"},
    description=(
        "Scores our saved test outputs (evaluation.save_outputs) and the runs in params score.runs "
        "under every named protocol (pg2, patn, gfla, cfld) — the same code as `pg2 score` — and "
        "makes one side-by-side table; each protocol's fingerprint says which numbers are comparable."
    ),
)
def score(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.score.stage import run_score

    params, paths = project.params(), project.paths
    with project.writing(context):
        summary = run_score(params, paths, log=context.log.info)
    return MaterializeResult(
        metadata={
            "table": MetadataValue.md(paths.score.table.read_text()),
            "runs": MetadataValue.json(summary.runs),
            "fingerprints": MetadataValue.json(summary.protocols),
            "mlflow_run_id": summary.mlflow_run_id,
        }
    )
