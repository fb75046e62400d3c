"""The training loader: batches of (condition image, target image, target pose map, target pose
mask) straight from the tensor cache.

Batch ``s`` is a pure function of (seed, s): the pair order is a seeded permutation per epoch
and the flip decisions are drawn with it, so a run resumed at step ``s`` sees exactly the batches
an uninterrupted run would. Images are gathered from the memory-mapped uint8 cache, moved to the
device as uint8 (4× less traffic than float) and converted there; pose maps and masks are drawn
on the device by the batched code of :mod:`pg2_pipeline.pose.maps`.

Horizontal flip (PG² doubles the training pairs this way) mirrors both images and the target
pose, whose left/right joints are swapped (:func:`~pg2_pipeline.skeleton.flip_horizontal`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from pg2_pipeline.imaging import from_numpy_hwc, from_uint8
from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.inputs.cache import TensorCache
from pg2_pipeline.inputs.manifests import read_manifest
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.pose.maps import network_maps_and_masks
from pg2_pipeline.skeleton import flip_horizontal


class PairLoader:
    """Seeded, resumable batches over one split's pairs.

    ``shuffle=False`` walks the pairs in manifest order (evaluation); the last batch may then be
    short. With ``shuffle=True`` every batch is full (an epoch's remainder is dropped).
    """

    def __init__(
        self,
        cache: TensorCache,
        pairs: np.ndarray,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        flip: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must be (P, 2) cache row indices, got shape {pairs.shape}")
        if len(pairs) == 0:
            raise ValueError(f"no {cache.split} pairs: the manifest is empty")
        if batch_size < 1 or (shuffle and batch_size > len(pairs)):
            raise ValueError(f"batch_size {batch_size} does not fit {len(pairs)} {cache.split} pairs")
        self.cache, self.pairs, self.batch_size = cache, pairs.astype(np.int64), batch_size
        self.seed, self.shuffle, self.flip = seed, shuffle, flip
        self.device = torch.device(device)
        self.height, self.width = cache.size_hw
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None
        self.rank, self.world = 0, 1  # see shard()

    @classmethod
    def from_manifest(cls, paths: ProjectPaths, split: str, batch_size: int, **kwargs) -> PairLoader:
        """The loader of one split of the ``manifests`` asset of ``paths``."""
        cache = TensorCache.open(paths.cache, split)
        table = read_manifest(paths.manifest_table(split))
        pairs = np.stack([table.column("from_index").to_numpy(), table.column("to_index").to_numpy()], axis=1)
        return cls(cache, pairs, batch_size, **kwargs)

    def subset(self, rows: np.ndarray, batch_size: int | None = None) -> PairLoader:
        """A loader over pairs ``rows`` of this one, in that order (not shuffled)."""
        rows = np.asarray(rows)
        return PairLoader(self.cache, self.pairs[rows], batch_size or len(rows), shuffle=False, device=self.device)

    @property
    def steps_per_epoch(self) -> int:
        if self.shuffle:
            return len(self.pairs) // self.batch_size
        return -(-len(self.pairs) // self.batch_size)

    def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._epoch is None or self._epoch[0] != epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch])
                order = rng.permutation(len(self.pairs))
                flips = rng.random(len(self.pairs)) < 0.5 if self.flip else np.zeros(len(self.pairs), bool)
            else:
                order, flips = np.arange(len(self.pairs)), np.zeros(len(self.pairs), bool)
            self._epoch = (epoch, order, flips)
        return self._epoch[1], self._epoch[2]

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(pair rows, flip flags) of the global batch ``step``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        order, flips = self._epoch_plan(epoch)
        sel = order[pos * self.batch_size : (pos + 1) * self.batch_size]
        return sel, flips[sel]

    def shard(self, rank: int, world: int) -> PairLoader:
        """This loader for rank ``rank`` of ``world`` processes: the same seeded global batches,
        of which :meth:`batch` returns the rank's contiguous slice (``batch_size / world`` pairs;
        each pair once per epoch across the ranks)."""
        if self.batch_size % world:
            raise ValueError(f"batch_size {self.batch_size} does not divide by {world} processes")
        shard = PairLoader(
            self.cache,
            self.pairs,
            self.batch_size,
            seed=self.seed,
            shuffle=self.shuffle,
            flip=self.flip,
            device=self.device,
        )
        shard.rank, shard.world = rank, world
        return shard

    def batch(self, step: int) -> Batch:
        rows, flip = self.indices(step)
        if self.world > 1:
            local = len(rows) // self.world
            rows, flip = (
                rows[self.rank * local : (self.rank + 1) * local],
                flip[self.rank * local : (self.rank + 1) * local],
            )
        cond_rows, tgt_rows = self.pairs[rows, 0], self.pairs[rows, 1]
        yx = self.cache.keypoints[tgt_rows].copy()  # (B, 18, 2)
        if flip.any():
            yx[flip] = flip_horizontal(yx[flip], self.width)
        condition = self._images(cond_rows, flip)
        target = self._images(tgt_rows, flip)
        maps, masks = network_maps_and_masks(torch.from_numpy(yx).to(self.device), self.height, self.width)
        return Batch(condition=condition, target=target, target_map=maps, target_mask=masks)

    def _images(self, rows: np.ndarray, flip: np.ndarray) -> torch.Tensor:
        # sorted gather from the memmap (sequential reads), then back to batch order
        order = np.argsort(rows, kind="stable")
        gathered = np.empty((len(rows), *self.cache.images.shape[1:]), np.uint8)
        gathered[order] = self.cache.images[rows[order]]
        if flip.any():
            gathered[flip] = gathered[flip, :, ::-1]
        return from_uint8(from_numpy_hwc(gathered, self.device))  # (B, 3, H, W) in [-1, 1]

    def iterate(self, start_step: int = 0, steps: int | None = None) -> Iterator[tuple[int, Batch]]:
        """(step, batch) from ``start_step``; ``steps`` batches, or one epoch when not shuffling."""
        if steps is None:
            steps = self.steps_per_epoch - start_step if not self.shuffle else None
        step = start_step
        while steps is None or step < start_step + steps:
            yield step, self.batch(step)
            step += 1
