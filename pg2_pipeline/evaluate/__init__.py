"""Evaluation metrics of the pose-transfer literature, each under a named, documented protocol.

Per-pair metrics take (B, 3, H, W) uint8 RGB batches (or floats holding [0, 255]) on any device
and return (B,) tensors; set metrics stream over batches. The functions named like their
module (``fid.fid``, ``lpips.lpips``) are not re-exported here, so that
``pg2_pipeline.evaluate.fid`` stays the module.

* :mod:`.metrics` — SSIM (:data:`SSIM_PROTOCOLS`: ``pg2``, ``gaussian``, ``win51``), mask-SSIM,
  PSNR, L1
* :mod:`.fid` — FID (TF-Inception 2015-12-05 pool3, streaming statistics)
* :mod:`.lpips` — AlexNet-LPIPS v0.1
* :mod:`.inception_score` — IS / mask-IS from logits; user-supplied weights or "unavailable"
* :mod:`.pckh` — PCKh with PATN's head-box definition
"""

from pg2_pipeline.evaluate.fid import FID_PROTOCOL, FIDStats, InceptionFeatures, frechet_distance
from pg2_pipeline.evaluate.inception_score import (
    UNAVAILABLE,
    UNAVAILABLE_REASON,
    InceptionLogits,
    InceptionScore,
    Unavailable,
    inception_score,
    inception_score_of_images,
    load_inception_logits,
)
from pg2_pipeline.evaluate.lpips import LPIPS
from pg2_pipeline.evaluate.metrics import (
    DEFAULT_SSIM_PROTOCOL,
    SSIM_PROTOCOLS,
    SSIMProtocol,
    apply_mask,
    l1,
    mask_ssim,
    psnr,
    ssim,
    ssim_protocol,
    target_pose_masks,
)
from pg2_pipeline.evaluate.pckh import PCKhCounts, head_box, pckh, pckh_score

__all__ = [
    "DEFAULT_SSIM_PROTOCOL",
    "FID_PROTOCOL",
    "FIDStats",
    "InceptionFeatures",
    "InceptionLogits",
    "InceptionScore",
    "LPIPS",
    "PCKhCounts",
    "SSIMProtocol",
    "SSIM_PROTOCOLS",
    "UNAVAILABLE",
    "UNAVAILABLE_REASON",
    "Unavailable",
    "apply_mask",
    "frechet_distance",
    "head_box",
    "inception_score",
    "inception_score_of_images",
    "l1",
    "load_inception_logits",
    "mask_ssim",
    "pckh",
    "pckh_score",
    "psnr",
    "ssim",
    "ssim_protocol",
    "target_pose_masks",
]
