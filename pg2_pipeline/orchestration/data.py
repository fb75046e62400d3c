"""Data assets: the synthetic twin and the image index."""

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

GROUP = "data"


@asset(
    group_name=GROUP,
    pool="pg2/twin",
    kinds={"python", "jpeg"},
    description=(
        "The synthetic twin of Market-1501 / DeepFashion: real file names, identities, cameras, "
        "splits and keypoint annotations, with synthetic people drawn in exactly those poses, "
        "written in the real dataset layout under assets/twin/dataset. Also a contact sheet."
    ),
)
def twin(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.data.twin import build_twin

    paths = project.paths
    with project.writing(context):
        s = build_twin(project.params(), paths, progress=True)
    context.log.info(f"twin: {s.total_images} images in {paths.twin_dataset}")
    return MaterializeResult(
        metadata={
            "images": s.total_images,
            "images_per_split": MetadataValue.json(s.images),
            "identities_per_split": MetadataValue.json(s.identities),
            "distractor_and_junk_images": s.distractor_images + s.junk_images,
            "images_per_second": s.images_per_second,
            "dataset_root": MetadataValue.path(str(paths.twin_dataset)),
            "contact_sheet": MetadataValue.md(viz.markdown_image(paths.twin_contact_sheet, "contact sheet")),
        }
    )


@asset(
    group_name=GROUP,
    deps=[twin],
    pool="pg2/image_index",
    kinds={"python", "parquet"},
    description=(
        "Index of the dataset folder (params image_index.root; the twin by default): one row per "
        "usable image with id, path, split, person, camera/view, size and content hash. Bad files "
        "are listed in quarantine.parquet with the reason; Market distractors/junk are counted."
    ),
    check_specs=[
        AssetCheckSpec(
            "quarantine_fraction",
            asset="image_index",
            blocking=True,
            description="Fails the run when more than image_index.max_quarantine_fraction of the files are "
            "quarantined.",
        )
    ],
)
def image_index(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.data.ingest import build_image_index

    paths = project.paths
    with project.writing(context):
        s = build_image_index(project.params(), paths, progress=True)
    return MaterializeResult(
        metadata={
            "dagster/row_count": s.images,
            "images_per_split": MetadataValue.json(s.images_per_split),
            "identities_per_split": MetadataValue.json(s.identities_per_split),
            "excluded": MetadataValue.json(s.excluded),
            "quarantined": s.quarantined,
            "quarantined_by_reason": MetadataValue.json(s.quarantined_by_reason),
            "table": MetadataValue.path(str(paths.image_index_table)),
            "quarantine_table": MetadataValue.path(str(paths.image_index_quarantine)),
            "preview": MetadataValue.md(viz.markdown_image(paths.image_index_preview, "sample images")),
        },
        check_results=[
            AssetCheckResult(
                check_name="quarantine_fraction",
                passed=s.quarantine_passed,
                severity=AssetCheckSeverity.ERROR,
                description=(
                    f"{s.quarantined} of {s.images + s.quarantined} files quarantined "
                    f"({s.quarantine_fraction:.2%}); limit {s.max_quarantine_fraction:.2%}"
                ),
                metadata={
                    "quarantine_fraction": s.quarantine_fraction,
                    "by_reason": MetadataValue.json(s.quarantined_by_reason),
                },
            )
        ],
    )
