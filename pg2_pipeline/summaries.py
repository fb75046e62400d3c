"""What each asset reports about itself: one frozen dataclass per asset, written to and read
from its ``summary.json`` through one schema (:func:`write` / :func:`read`).

The asset adapters (Dagster metadata), the printed report and the registry read these typed
objects, never the JSON by string key, so a renamed field fails where it is used (and in the
tests), not as a silent ``KeyError`` at the end of a run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pg2_pipeline import fileio, typed

FORMAT = 1
S = TypeVar("S")


class SummaryError(ValueError):
    """A summary file that is missing, of another asset, or does not match its schema."""


def write(path: str | Path, summary: Any) -> Path:
    """Writes ``summary`` (one of the classes below) atomically as JSON, headed by its kind."""
    body = {"kind": type(summary).__name__, "format": FORMAT, **dataclasses.asdict(summary)}
    return fileio.write_json(path, body)


def read(path: str | Path, cls: type[S], asset: str | None = None) -> S:
    """The summary at ``path`` as ``cls``; :class:`SummaryError` names the file and the key.
    ``asset``: the asset that writes it, for the message (default ``cls.ASSET``)."""
    path = Path(path)
    asset = asset or cls.ASSET
    if not path.is_file():
        raise SummaryError(f"{path}: not found: materialize the '{asset}' asset first")
    raw = json.loads(path.read_text())
    kind, version = raw.pop("kind", None), raw.pop("format", None)
    if kind != cls.__name__ or version != FORMAT:
        raise SummaryError(
            f"{path}: expected a {cls.__name__} (format {FORMAT}), found {kind!r} (format {version!r}): "
            f"rematerialize the '{asset}' asset"
        )
    return typed.build(cls, raw, "", str(path), SummaryError)


def read_optional(path: str | Path, cls: type[S], asset: str | None = None) -> S | None:
    """:func:`read`, or None when the asset has not been materialized yet."""
    return read(path, cls, asset) if Path(path).is_file() else None


# ------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class TwinSummary:
    ASSET: ClassVar[str] = "twin"
    dataset: str
    profile: str
    seed: int
    images: dict[str, int]  # per split
    identities: dict[str, int]  # per split, real identities only
    distractor_images: int
    junk_images: int
    total_images: int
    seconds: float
    images_per_second: float | None


@dataclass(frozen=True)
class ImageIndexSummary:
    ASSET: ClassVar[str] = "image_index"
    dataset: str
    root: str
    images: int
    images_per_split: dict[str, int]
    identities_per_split: dict[str, int]
    excluded: dict[str, int]  # Market: distractor / junk
    quarantined: int
    quarantined_by_reason: dict[str, int]
    quarantine_fraction: float
    missing_from_disk: int
    max_quarantine_fraction: float
    seconds: float
    params_hash: str

    @property
    def quarantine_passed(self) -> bool:
        return self.quarantine_fraction <= self.max_quarantine_fraction


# ------------------------------------------------------------------------------ pose


@dataclass(frozen=True)
class KeypointsSummary:
    ASSET: ClassVar[str] = "keypoints"
    backend: str
    images: int
    found: int
    not_found_reasons: dict[str, int]
    min_joints: int
    coverage_per_split: dict[str, float]
    coverage: float
    min_coverage: float
    out_of_bounds_images: int
    mean_visible_joints: float
    params_hash: str
    seconds: float
    # annotations backend
    annotation_files: tuple[str, ...] = ()
    not_in_file: int = 0
    not_in_index: int = 0
    # blazepose backend: shard and image counts of the incremental extraction
    extraction: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PairsSummary:
    ASSET: ClassVar[str] = "pairs"
    dataset: str
    pairs_per_split: dict[str, int]
    identities_per_split: dict[str, int]
    test_protocol: str
    flip_augmentation: bool
    train_pairs_with_flips: int
    images_per_split: dict[str, int]
    removed_by_filter: dict[str, dict[str, int]]  # filter -> split -> images
    capped_identities: dict[str, int]
    standard_pairs: int
    standard_unused: dict[str, int]  # reason -> pairs
    standard_targets_without_pose: int
    leaked_identities: tuple[str, ...]
    self_pairs: int
    params_hash: str
    seconds: float


# ------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class SplitCounts:
    pairs: int
    images: int
    identities: int
    cache_bytes: int


@dataclass(frozen=True)
class ManifestsSummary:
    ASSET: ClassVar[str] = "manifests"
    dataset: str
    image_size: tuple[int, ...]  # (H, W)
    params_hash: str
    splits: dict[str, SplitCounts]
    seconds: float


@dataclass(frozen=True)
class Selected:
    """Which weights a training stage exported (params ``select``)."""

    rule: str  # "last" or "best_<metric>"
    step: int
    metric: str | None  # the validation metric that chose (None for "last")
    value: float | None


@dataclass(frozen=True)
class TrainingSummary:
    """stage1 and stage2 (read with ``asset=<stage>``)."""

    ASSET: ClassVar[str] = "stage1"
    stage: str
    steps: int
    resumed_from_step: int
    device: str
    autocast: str  # "fp32" or the autocast dtype
    batch_size: int
    image_size: tuple[int, ...]
    seconds_this_session: float
    images_per_second: float
    first_losses: dict[str, float]
    final_losses: dict[str, float]
    mlflow_run_id: str
    mlflow_experiment_id: str
    mlflow_run_url: str
    tracking_uri: str
    fingerprint: str
    code_version: dict[str, str]
    manifest_hash: str
    seed: int  # the training seed
    validation_pairs: int  # 0: no validation
    selected: Selected
    final_validation: dict[str, float]  # the last validation record (step and metrics)
    validation_reference: dict[str, float]  # stage 2 with best_lpips/fid_keep_ssim: G1's validation; else {}
    processes: int  # world size: 1, or the torchrun processes that trained it
    # how it computed: precision, channels_last, how chosen (params / measured / cached / cuda /
    # fallback), why, and the measured images/s per mode (pg2_pipeline.train.precision)
    precision: dict[str, Any] = field(default_factory=dict)
    # checkpoints this session could not resume from, moved (not deleted) to set_aside_to:
    # "step-00000400.pt unreadable (truncated)", "step-00000600.pt other params"
    set_aside: tuple[str, ...] = ()
    set_aside_to: str = ""

    def headline_losses(self, which: str = "final") -> dict[str, float]:
        """The total losses (``loss_G1``, ``loss_G2``, ``loss_D``), not their parts."""
        losses = self.final_losses if which == "final" else self.first_losses
        return {k: v for k, v in losses.items() if k.startswith("loss_") and k.count("_") <= 1}


# ------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class ChampionGate:
    """Whether the new generator earns the ``champion`` alias: decided once, by the evaluation."""

    passed: bool
    metric: str
    value: float
    baseline: str
    baseline_value: float
    reason: str


@dataclass(frozen=True)
class EvaluationMetrics:
    """The DVC metrics file (``metrics.json``): one mapping of metric -> value per method; a value
    is a number or the reason it is not one ("unavailable: ...", "disabled ...")."""

    pairs: int
    test_pairs_available: int
    dataset: str
    profile: str
    ssim_protocol: str
    stage2: dict[str, float | str]
    stage1: dict[str, float | str]
    copy: dict[str, float | str]

    METHODS: ClassVar[tuple[str, ...]] = ("stage2", "stage1", "copy")

    def method(self, name: str) -> dict[str, float | str]:
        if name not in self.METHODS:
            raise KeyError(f"unknown method '{name}' (expected one of {', '.join(self.METHODS)})")
        return getattr(self, name)

    def numeric(self) -> dict[tuple[str, str], float]:
        """Every numeric value, keyed by (method, metric)."""
        return {(m, k): float(v) for m in self.METHODS for k, v in self.method(m).items() if isinstance(v, float)}


@dataclass(frozen=True)
class EvaluationSummary:
    ASSET: ClassVar[str] = "evaluation"
    metrics: EvaluationMetrics
    fid: dict[str, Any]
    curves_points: int
    gate: ChampionGate
    seconds: float
    device: str
    # how it computed (evaluate.stage.Speed, the pose workers) and seconds per part; empty in
    # summaries written before it existed
    speed: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreSummary:
    ASSET: ClassVar[str] = "score"
    runs: dict[str, dict[str, int]]  # run name -> scored / expected / missing / unmatched / bad
    protocols: dict[str, str]  # protocol -> fingerprint
    seconds: float
    mlflow_run_id: str


@dataclass(frozen=True)
class Registration:
    """What the registry made of the evaluated generator (``report/registration.json``)."""

    ASSET: ClassVar[str] = "evaluation"
    name: str
    version: str
    model_uri: str  # models:/name/version
    champion: bool
    reason: str


def write_metrics(path: str | Path, metrics: EvaluationMetrics) -> Path:
    """``metrics.json`` stays a plain mapping (DVC reads it), without the summary header."""
    return fileio.write_json(path, dataclasses.asdict(metrics))


def read_metrics(path: str | Path) -> EvaluationMetrics:
    path = Path(path)
    if not path.is_file():
        raise SummaryError(f"{path}: no metrics: materialize the 'evaluation' asset first")
    return typed.build(EvaluationMetrics, json.loads(path.read_text()), "", str(path), SummaryError)
