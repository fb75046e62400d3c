"""BatchNorm with statistics over the whole global batch when D runs on several ranks.

Under DistributedDataParallel each rank normalises its own slice of the batch, so a D trained on
2 ranks × 4 pairs would see other statistics than one process on 8. ``torch.nn.SyncBatchNorm``
fixes that on GPUs but refuses CPU tensors (torch 2.13); :class:`CrossRankBatchNorm2d` does the
same on any device and backend (gloo on CPU): it all-reduces each channel's count, sum and sum of
squares — with autograd, so the backward pass is synchronised too — and normalises with the
global mean and (biased) variance, updating the running statistics with the unbiased one, as
BatchNorm does. A subclass of ``BatchNorm2d``: its parameters, buffers and ``state_dict`` keys are
the same, so checkpoints move freely between one process and many.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    import torch.distributed.nn.functional as dist_fn

    return dist_fn.all_reduce(t, op=dist.ReduceOp.SUM)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training-mode statistics span every rank of the default group."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        count = torch.full((1,), xf.numel() / xf.shape[1], dtype=torch.float32, device=x.device)
        stats = torch.cat([count, xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3))])  # (1 + 2C,)
        stats = _all_reduce_sum(stats)
        n, c = stats[0], x.shape[1]
        mean = stats[1 : 1 + c] / n
        var = (stats[1 + c :] / n - mean * mean).clamp_min(0)  # biased: what normalisation uses
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        y = (xf - mean.view(1, -1, 1, 1)) * torch.rsqrt(var.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


def synchronize_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm synchronised across ranks: torch's SyncBatchNorm on CUDA,
    :class:`CrossRankBatchNorm2d` elsewhere. The parameter and buffer objects stay the same, so
    an optimizer built before keeps updating them."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)  # reuses the parameters
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = CrossRankBatchNorm2d  # same state, synchronised forward
    return module
