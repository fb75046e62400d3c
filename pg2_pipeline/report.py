"""What the pipeline has made so far, read back from the assets' summaries: printed after each
``pg2 materialize`` and at the end of ``make demo`` / ``pg2 report``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pg2_pipeline import summaries as S
from pg2_pipeline.paths import ASSET_NAMES, ProjectPaths


def _rel(path: Path | str, root: Path) -> str:
    path = Path(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _twin(paths: ProjectPaths) -> list[str]:
    s = S.read_optional(paths.summary("twin"), S.TwinSummary)
    if not s:
        return []
    return [
        f"{s.total_images} images ({_counts(s.images)}, of which {s.distractor_images} distractors "
        f"and {s.junk_images} junk); identities: {_counts(s.identities)}; {s.images_per_second or 0:.0f} images/s",
        f"dataset: {_rel(paths.twin_dataset, paths.root)}",
        f"contact sheet: {_rel(paths.twin_contact_sheet, paths.root)}",
    ]


def _image_index(paths: ProjectPaths) -> list[str]:
    s = S.read_optional(paths.summary("image_index"), S.ImageIndexSummary)
    if not s:
        return []
    reasons = f" {_counts(s.quarantined_by_reason)}" if s.quarantined else ""
    return [
        f"{s.images} images ({_counts(s.images_per_split)}); identities: {_counts(s.identities_per_split)}",
        f"excluded: {_counts(s.excluded)}; quarantined: {s.quarantined} ({s.quarantine_fraction:.2%}){reasons}",
        f"table: {_rel(paths.image_index_table, paths.root)}",
    ]


def _keypoints(paths: ProjectPaths) -> list[str]:
    s = S.read_optional(paths.summary("keypoints"), S.KeypointsSummary)
    if not s:
        return []
    missing = f"; without a pose: {_counts(s.not_found_reasons)}" if s.not_found_reasons else ""
    return [
        f"{s.images} poses from {s.backend}; >= {s.min_joints} joints: {_counts(s.coverage_per_split)}{missing}",
        f"pictures: {_rel(paths.keypoints_preview, paths.root)}, {_rel(paths.keypoints_maps_preview, paths.root)}",
    ]


def _pairs(paths: ProjectPaths) -> list[str]:
    s = S.read_optional(paths.summary("pairs"), S.PairsSummary)
    if not s:
        return []
    flips = f" ({s.train_pairs_with_flips} with flips)" if s.flip_augmentation else ""
    return [
        f"train {s.pairs_per_split['train']} pairs{flips} over {s.identities_per_split['train']} identities; "
        f"test {s.pairs_per_split['test']} pairs ({s.test_protocol}) over {s.identities_per_split['test']} identities; "
        f"validation {s.pairs_per_split.get('val', 0)} pairs over {s.identities_per_split.get('val', 0)} held-out "
        "training identities",
        f"standard test pairs not usable here: {_counts(s.standard_unused)}"
        if s.test_protocol == "standard"
        else "test pairs mined",
        f"histogram: {_rel(paths.pairs_histogram, paths.root)}",
    ]


def _manifests(paths: ProjectPaths) -> list[str]:
    s = S.read_optional(paths.summary("manifests"), S.ManifestsSummary)
    if not s:
        return []
    splits = "; ".join(
        f"{k} {v.pairs} pairs / {v.images} images ({v.cache_bytes / 2**20:.0f} MiB cache)" for k, v in s.splits.items()
    )
    return [f"{splits}; {s.image_size[0]}x{s.image_size[1]}", f"cache: {_rel(paths.cache.folder, paths.root)}"]


def _training(stage: str) -> Callable[[ProjectPaths], list[str]]:
    def describe(paths: ProjectPaths) -> list[str]:
        s = S.read_optional(paths.stage(stage).summary, S.TrainingSummary, stage)
        if not s:
            return []
        first = ", ".join(f"{k} {v:.3f}" for k, v in s.headline_losses("first").items())
        last = ", ".join(f"{k} {v:.3f}" for k, v in s.headline_losses("final").items())
        resumed = f" (resumed at {s.resumed_from_step})" if s.resumed_from_step else ""
        selected = f"exported: {s.selected.rule} (step {s.selected.step})"
        if s.final_validation:
            selected += (
                f"; last validation SSIM {s.final_validation['ssim']:.4f}, LPIPS {s.final_validation['lpips']:.4f}"
            )
        return [
            f"{s.steps} steps{resumed} on {s.device} ({s.autocast}, {s.processes} process(es)), "
            f"{s.images_per_second:.1f} images/s; losses {first} -> {last}",
            selected,
            f"sample grid: {_rel(paths.stage(stage).latest_sample, paths.root)}; "
            f"MLflow run {s.mlflow_run_id} ({s.mlflow_run_url})",
        ]

    return describe


def _evaluation(paths: ProjectPaths) -> list[str]:
    files = paths.evaluation
    if not files.table.is_file():
        return []
    lines = [f"report: {_rel(files.report, paths.root)}/ (metrics.md, examples.png, curves.png, per_pair.parquet)"]
    registration = S.read_optional(files.registration, S.Registration)
    if registration:
        alias = "@champion" if registration.champion else "(no alias)"
        lines.append(f"registered {registration.name} version {registration.version} {alias}: {registration.reason}")
    lines += ["", *files.table.read_text().splitlines()]
    return lines


def _score(paths: ProjectPaths) -> list[str]:
    files = paths.score
    if not files.table.is_file():
        return []
    lines = [f"side by side: {_rel(files.table, paths.root)} (one pg2 score folder per run in runs/)"]
    return lines + ["", *files.table.read_text().splitlines()[2:]]


DESCRIBERS: dict[str, Callable[[ProjectPaths], list[str]]] = {
    "twin": _twin,
    "image_index": _image_index,
    "keypoints": _keypoints,
    "pairs": _pairs,
    "manifests": _manifests,
    "stage1": _training("stage1"),
    "stage2": _training("stage2"),
    "evaluation": _evaluation,
    "score": _score,
}


def asset_lines(name: str, root: Path) -> list[str]:
    """Lines describing what asset ``name`` made (empty when it has not been materialized)."""
    lines = DESCRIBERS[name](ProjectPaths(root))
    return [f"{name:<12} {line}" if i == 0 else f"{'':<12} {line}" for i, line in enumerate(lines)]


def print_report(root: Path) -> None:
    lines = [line for name in ASSET_NAMES for line in asset_lines(name, root)]
    print("\n==> what the pipeline made")
    print("\n".join(lines) if lines else "nothing yet: run `make demo`")
