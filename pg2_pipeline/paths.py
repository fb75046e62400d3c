"""Where every asset lives on disk: the one module that maps an asset name to its files.

Each asset owns one stable folder ``assets/<asset name>/`` (a DVC out, git-ignored). Code asks
this module for paths; nothing else spells them out (dvc.yaml repeats them for DVC and
``tests/test_pipeline_graph.py`` checks that the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pg2_pipeline.env import find_project_root

ASSET_NAMES = ("twin", "image_index", "keypoints", "pairs", "manifests", "stage1", "stage2", "evaluation")


@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    @classmethod
    def discover(cls) -> "ProjectPaths":
        return cls(find_project_root())

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    def asset_dir(self, name: str) -> Path:
        if name not in ASSET_NAMES:
            raise KeyError(f"unknown asset '{name}' (expected one of {', '.join(ASSET_NAMES)})")
        return self.root / "assets" / name

    def resolve(self, path: str | Path) -> Path:
        """A path from params.yaml: absolute as given, relative to the project root otherwise."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    # twin
    @property
    def twin_dataset(self) -> Path:
        return self.asset_dir("twin") / "dataset"

    @property
    def twin_contact_sheet(self) -> Path:
        return self.asset_dir("twin") / "contact_sheet.png"

    @property
    def twin_summary(self) -> Path:
        return self.asset_dir("twin") / "summary.json"

    # image_index
    @property
    def image_index_table(self) -> Path:
        return self.asset_dir("image_index") / "index.parquet"

    @property
    def image_index_quarantine(self) -> Path:
        return self.asset_dir("image_index") / "quarantine.parquet"

    @property
    def image_index_summary(self) -> Path:
        return self.asset_dir("image_index") / "summary.json"

    @property
    def image_index_preview(self) -> Path:
        return self.asset_dir("image_index") / "preview.png"

    # keypoints
    @property
    def keypoints_table(self) -> Path:
        return self.asset_dir("keypoints") / "keypoints.parquet"

    @property
    def keypoints_shards(self) -> Path:
        return self.asset_dir("keypoints") / "extraction"

    @property
    def keypoints_summary(self) -> Path:
        return self.asset_dir("keypoints") / "summary.json"

    @property
    def keypoints_preview(self) -> Path:
        return self.asset_dir("keypoints") / "skeletons.png"

    @property
    def keypoints_maps_preview(self) -> Path:
        return self.asset_dir("keypoints") / "pose_maps_and_masks.png"

    # pairs
    @property
    def pairs_table(self) -> Path:
        return self.asset_dir("pairs") / "pairs.parquet"

    @property
    def pairs_unused_standard(self) -> Path:
        return self.asset_dir("pairs") / "unused_standard_pairs.parquet"

    @property
    def pairs_histogram(self) -> Path:
        return self.asset_dir("pairs") / "pairs_per_identity.png"

    @property
    def pairs_summary(self) -> Path:
        return self.asset_dir("pairs") / "summary.json"

    # manifests
    def manifest_table(self, split: str) -> Path:
        return self.asset_dir("manifests") / f"{split}.parquet"

    @property
    def manifests_cache(self) -> Path:
        return self.asset_dir("manifests") / "cache"

    @property
    def manifests_summary(self) -> Path:
        return self.asset_dir("manifests") / "summary.json"

    # evaluation
    @property
    def evaluation_metrics(self) -> Path:
        return self.asset_dir("evaluation") / "metrics.json"

    @property
    def evaluation_report(self) -> Path:
        return self.asset_dir("evaluation") / "report"
