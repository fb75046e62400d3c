"""The unit of work of training and evaluation: a batch of (condition, target) pairs."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from pg2_pipeline.skeleton import NUM_JOINTS

Tensor = torch.Tensor


@dataclass(frozen=True)
class Batch:
    """One batch of pairs (A → B). Images and the pose map in [-1, 1], mask in {0, 1}."""

    condition: Tensor  # I_A (B, 3, H, W)
    target: Tensor  # I_B (B, 3, H, W)
    target_map: Tensor  # P_B (B, 18, H, W)
    target_mask: Tensor  # M_B (B, 1, H, W)

    def __post_init__(self) -> None:
        b, _, h, w = self.target.shape
        expected = {"condition": 3, "target": 3, "target_map": NUM_JOINTS, "target_mask": 1}
        for name, channels in expected.items():
            t = getattr(self, name)
            if t.dim() != 4 or t.shape[0] != b or t.shape[2:] != (h, w):
                raise ValueError(f"Batch.{name} has shape {tuple(t.shape)}, expected ({b}, C, {h}, {w})")
            if t.shape[1] != channels:
                raise ValueError(f"Batch.{name} has {t.shape[1]} channels, expected {channels}")

    def to(self, device: torch.device | str, memory_format=torch.contiguous_format) -> Batch:
        """The batch on ``device`` (non-blocking from pinned memory) in ``memory_format``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=True, memory_format=memory_format)
            for f in fields(self)
        }
        return Batch(**moved)

    def __len__(self) -> int:
        return self.target.shape[0]
