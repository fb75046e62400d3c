"""Where everything lives on disk: the one module that maps an asset name to its files.

Each asset owns one stable folder ``assets/<asset name>/`` (a DVC out, git-ignored). Code asks
this module for paths; nothing else spells them out (dvc.yaml repeats them for DVC and
``tests/test_pipeline_graph.py`` checks that the two agree).

    paths = ProjectPaths.discover()
    paths.stage("stage1").weights("g1")      # assets/stage1/g1.safetensors
    paths.cache.images("train")              # assets/manifests/cache/train.images.u8
    paths.evaluation.metrics                 # assets/evaluation/metrics.json
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pg2_pipeline.env import find_project_root

ASSET_NAMES = ("twin", "image_index", "keypoints", "pairs", "manifests", "stage1", "stage2", "evaluation", "score")
TRAINING_STAGES = ("stage1", "stage2")
SPLITS = ("train", "val", "test")  # val: held-out training identities (pairs.validation_identities)
SUMMARY = "summary.json"


@dataclass(frozen=True)
class StagePaths:
    """A training stage's folder: final weights + configs, checkpoints, samples, history."""

    folder: Path

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:08d}.pt"

    @property
    def best_checkpoint(self) -> Path:
        """The networks at the best validation step so far (params ``select``)."""
        return self.checkpoints / "best.pt"

    @property
    def set_aside(self) -> Path:
        """Checkpoints a run could not resume from (unreadable, other params or code), moved
        here into one folder per run that found them, with the reasons."""
        return self.checkpoints / "set-aside"

    @property
    def samples(self) -> Path:
        return self.folder / "samples"

    def sample(self, step: int) -> Path:
        return self.samples / f"step-{step:08d}.png"

    @property
    def latest_sample(self) -> Path:
        return self.samples / "latest.png"

    def weights(self, model: str) -> Path:
        return self.folder / f"{model}.safetensors"

    def model_config(self, model: str) -> Path:
        return self.folder / f"{model}.json"

    @property
    def history(self) -> Path:
        return self.folder / "history.json"

    @property
    def loss_curve(self) -> Path:
        return self.folder / "losses.png"

    @property
    def validation(self) -> Path:
        """Validation metrics per validation step (JSON list)."""
        return self.folder / "validation.json"

    @property
    def summary(self) -> Path:
        return self.folder / SUMMARY


@dataclass(frozen=True)
class CachePaths:
    """The tensor cache of the manifests asset: per split, decoded images, keypoints, header."""

    folder: Path

    def images(self, split: str) -> Path:
        return self.folder / f"{split}.images.u8"

    def keypoints(self, split: str) -> Path:
        return self.folder / f"{split}.keypoints.npy"

    def header(self, split: str) -> Path:
        return self.folder / f"{split}.json"


@dataclass(frozen=True)
class ExtractionPaths:
    """The incremental BlazePose store: one Parquet shard per hash bucket, optional masks."""

    folder: Path

    @property
    def shards(self) -> Path:
        return self.folder / "shards"

    def shard(self, index: int, num_shards: int) -> Path:
        return self.shards / f"shard-{index:05d}-of-{num_shards:05d}.parquet"

    @staticmethod
    def parse_shard(name: str) -> tuple[int, int] | None:
        """(index, num_shards) of a shard file name, None for any other name."""
        m = re.match(r"^shard-(\d{5})-of-(\d{5})\.parquet$", name)
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def masks(self) -> Path:
        return self.folder / "masks"

    def mask(self, image_id: str) -> Path:
        return self.masks / f"{image_id}.png"


@dataclass(frozen=True)
class EvaluationPaths:
    folder: Path

    @property
    def metrics(self) -> Path:  # DVC metrics
        return self.folder / "metrics.json"

    @property
    def curves_csv(self) -> Path:  # DVC plots
        return self.folder / "curves.csv"

    @property
    def report(self) -> Path:
        return self.folder / "report"

    @property
    def table(self) -> Path:
        return self.report / "metrics.md"

    @property
    def per_pair(self) -> Path:
        return self.report / "per_pair.parquet"

    @property
    def examples(self) -> Path:
        return self.report / "examples.png"

    @property
    def curves(self) -> Path:
        return self.report / "curves.png"

    @property
    def summary(self) -> Path:
        return self.report / SUMMARY

    @property
    def registration(self) -> Path:
        return self.report / "registration.json"

    @property
    def outputs(self) -> Path:
        """Saved test outputs, one folder per method (params ``evaluation.save_outputs``)."""
        return self.folder / "outputs"

    def method_outputs(self, method: str) -> Path:
        return self.outputs / method

    @property
    def outputs_pairs(self) -> Path:
        """from,to CSV of the pairs the evaluation generated (the pairs ``score`` expects)."""
        return self.outputs / "pairs.csv"


@dataclass(frozen=True)
class ScorePaths:
    """The score asset: one ``pg2 score`` output folder per run, and the side-by-side table."""

    folder: Path

    def run(self, name: str) -> Path:
        return self.folder / "runs" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)

    @property
    def table(self) -> Path:
        return self.folder / "side_by_side.md"

    @property
    def metrics(self) -> Path:  # DVC metrics: {run: {protocol: {...}}}
        return self.folder / "metrics.json"

    @property
    def summary(self) -> Path:
        return self.folder / SUMMARY


@dataclass(frozen=True)
class DemoPaths:
    """What ``make demo`` writes after the pipeline: one ``pg2 generate`` call (not an asset:
    no stage depends on it, so it lives outside ``assets/``)."""

    folder: Path

    @property
    def target_pose(self) -> Path:
        return self.folder / "target_pose.json"

    @property
    def generated(self) -> Path:
        return self.folder / "generated.png"

    @property
    def example(self) -> Path:
        return self.folder / "example.png"


@dataclass(frozen=True)
class LocalCachePaths:
    """``.pg2_cache/``: what this machine measured or computed once and reuses across runs —
    precision timings, FID features of real images. Inside the project (never in HOME), ignored
    by git and DVC, safe to delete (everything in it is recomputed on demand). Entries carry
    their key and are re-measured when it does not match."""

    folder: Path

    @property
    def precision(self) -> Path:
        """One JSON file of precision / memory-format timings (``precision: auto``)."""
        return self.folder / "precision.json"

    @property
    def features(self) -> Path:
        """Feature caches (e.g. FID features of a real set), one file per key."""
        return self.folder / "features"


@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    @classmethod
    def discover(cls) -> ProjectPaths:
        return cls(find_project_root())

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    def asset_dir(self, name: str) -> Path:
        if name not in ASSET_NAMES:
            raise KeyError(f"unknown asset '{name}' (expected one of {', '.join(ASSET_NAMES)})")
        return self.root / "assets" / name

    def summary(self, name: str) -> Path:
        """``summary.json`` of asset ``name`` (the evaluation keeps it in its report)."""
        return self.evaluation.summary if name == "evaluation" else self.asset_dir(name) / SUMMARY

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

    # image_index
    @property
    def image_index_table(self) -> Path:
        return self.asset_dir("image_index") / "index.parquet"

    @property
    def image_index_quarantine(self) -> Path:
        return self.asset_dir("image_index") / "quarantine.parquet"

    @property
    def image_index_preview(self) -> Path:
        return self.asset_dir("image_index") / "preview.png"

    # keypoints
    @property
    def keypoints_table(self) -> Path:
        return self.asset_dir("keypoints") / "keypoints.parquet"

    @property
    def keypoints_extraction(self) -> ExtractionPaths:
        return ExtractionPaths(self.asset_dir("keypoints") / "extraction")

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

    # manifests
    def manifest_table(self, split: str) -> Path:
        if split not in SPLITS:
            raise KeyError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
        return self.asset_dir("manifests") / f"{split}.parquet"

    @property
    def cache(self) -> CachePaths:
        return CachePaths(self.asset_dir("manifests") / "cache")

    # stage1, stage2
    def stage(self, name: str) -> StagePaths:
        if name not in TRAINING_STAGES:
            raise KeyError(f"unknown training stage '{name}' (expected one of {', '.join(TRAINING_STAGES)})")
        return StagePaths(self.asset_dir(name))

    # evaluation
    @property
    def evaluation(self) -> EvaluationPaths:
        return EvaluationPaths(self.asset_dir("evaluation"))

    # score
    @property
    def score(self) -> ScorePaths:
        return ScorePaths(self.asset_dir("score"))

    # not an asset
    @property
    def demo(self) -> DemoPaths:
        return DemoPaths(self.root / "demo")

    @property
    def local_cache(self) -> LocalCachePaths:
        """Measurements and features this machine computed once and reuses (not an asset)."""
        return LocalCachePaths(self.root / ".pg2_cache")

    @property
    def locks(self) -> Path:
        """``assets/.locks/``: one write lock per asset and its holder's record
        (:mod:`pg2_pipeline.locks`). Beside the assets' folders, never inside one: DVC deletes a
        stage's outs before it runs the stage."""
        return self.root / "assets" / ".locks"
