"""Pose assets: keypoints per image, and same-identity pairs."""

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
from pg2_pipeline.orchestration.data import image_index
from pg2_pipeline.orchestration.resources import ProjectResource

GROUP = "pose"


@asset(
    group_name=GROUP,
    deps=[image_index],
    pool="pg2/keypoints",
    kinds={"python", "parquet"},
    description=(
        "One OpenPose-18 pose per indexed image (18 y, 18 x, 18 scores, visible count), from the "
        "standard annotation files (default; the literature's poses) or offline BlazePose "
        "(params keypoints.backend). Images without a pose are flagged, never dropped."
    ),
    check_specs=[
        AssetCheckSpec(
            "coverage",
            asset="keypoints",
            blocking=True,
            description="Share of images with at least keypoints.min_joints visible joints must reach "
            "keypoints.min_coverage.",
        ),
        AssetCheckSpec("joints_in_bounds", asset="keypoints", description="Every visible joint lies inside its image."),
    ],
)
def keypoints(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.pose.stage import build_keypoints

    paths = project.paths
    with project.writing(context):
        s = build_keypoints(project.params(), paths)
    return MaterializeResult(
        metadata={
            "dagster/row_count": s.images,
            "backend": s.backend,
            "coverage_per_split": MetadataValue.json(s.coverage_per_split),
            "mean_visible_joints": s.mean_visible_joints,
            "not_found_reasons": MetadataValue.json(s.not_found_reasons),
            "table": MetadataValue.path(str(paths.keypoints_table)),
            "skeletons": MetadataValue.md(viz.markdown_image(paths.keypoints_preview, "skeletons")),
            "pose_maps_and_masks": MetadataValue.md(
                viz.markdown_image(paths.keypoints_maps_preview, "image | pose map | pose mask")
            ),
        },
        check_results=[
            AssetCheckResult(
                check_name="coverage",
                passed=s.coverage >= s.min_coverage,
                severity=AssetCheckSeverity.ERROR,
                description=f"{s.coverage:.1%} of images have >= {s.min_joints} joints (minimum {s.min_coverage:.0%})",
                metadata={"coverage_per_split": MetadataValue.json(s.coverage_per_split)},
            ),
            AssetCheckResult(
                check_name="joints_in_bounds",
                passed=s.out_of_bounds_images == 0,
                severity=AssetCheckSeverity.WARN,
                description=f"{s.out_of_bounds_images} images have a visible joint outside the image",
            ),
        ],
    )


@asset(
    group_name=GROUP,
    deps=[image_index, keypoints],
    pool="pg2/pairs",
    kinds={"python", "parquet"},
    description=(
        "Ordered (condition, target) pairs of different images of the same identity: mined for "
        "train (min joints + torso filters, optional cap), the standard published lists for test "
        "(or mined). Unusable standard pairs are listed with their reason."
    ),
    check_specs=[
        AssetCheckSpec(
            "identities_disjoint",
            asset="pairs",
            blocking=True,
            description="No identity appears in both train and test pairs.",
        ),
        AssetCheckSpec("no_self_pairs", asset="pairs", blocking=True, description="No pair uses the same image twice."),
    ],
)
def pairs(context: AssetExecutionContext, project: ProjectResource) -> MaterializeResult:
    from pg2_pipeline.pairs.stage import build_pairs

    paths = project.paths
    with project.writing(context):
        s = build_pairs(project.params(), paths)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(s.pairs_per_split.values()),
            "pairs_per_split": MetadataValue.json(s.pairs_per_split),
            "identities_per_split": MetadataValue.json(s.identities_per_split),
            "removed_by_filter": MetadataValue.json(s.removed_by_filter),
            "standard_unused": MetadataValue.json(s.standard_unused),
            "test_protocol": s.test_protocol,
            "table": MetadataValue.path(str(paths.pairs_table)),
            "pairs_per_identity": MetadataValue.md(viz.markdown_image(paths.pairs_histogram, "pairs per identity")),
        },
        check_results=[
            AssetCheckResult(
                check_name="identities_disjoint",
                passed=not s.leaked_identities,
                severity=AssetCheckSeverity.ERROR,
                description=f"{len(s.leaked_identities)} identities in both splits"
                + (f", e.g. {s.leaked_identities[:5]}" if s.leaked_identities else ""),
            ),
            AssetCheckResult(
                check_name="no_self_pairs",
                passed=s.self_pairs == 0,
                severity=AssetCheckSeverity.ERROR,
                description=f"{s.self_pairs} pairs repeat one image",
            ),
        ],
    )
