"""Evaluation metrics of the pose-transfer literature, each under a named, documented protocol.

Per-pair metrics take (B, 3, H, W) uint8 RGB batches (or floats holding [0, 255]) on any device
and return (B,) tensors; set metrics stream over batches. The functions named like their
module (``fid.fid``, ``lpips.lpips``) live in their modules; this package re-exports nothing, so
importing one metric (training validates with SSIM and LPIPS) does not import them all.

* :mod:`.metrics` — SSIM (:data:`SSIM_PROTOCOLS`: ``pg2``, ``gaussian``, ``win51``), mask-SSIM,
  PSNR, L1
* :mod:`.fid` — FID (TF-Inception 2015-12-05 pool3, streaming statistics); :mod:`.inception_net`
  its network as an eager, batch-norm-folded port (same features, 2× faster on CPU)
* :mod:`.feature_cache` — real-set FID statistics and per-image results of real images, computed
  once per machine (``.pg2_cache/features``), keyed by content and feature protocol
* :mod:`.lpips` — AlexNet-LPIPS v0.1
* :mod:`.inception_score` — IS / mask-IS from logits; user-supplied weights or "unavailable"
* :mod:`.pckh` — PCKh with PATN's head-box definition; :mod:`.pose_pool` BlazePose for it in
  worker processes
"""
