"""The FID real set of a project (README, "Metric protocols"): its *training* images, read from
the manifests' tensor cache, all of them or a seeded subset. The evaluation, ``pg2 score`` and
stage 2's validation FID read the same images, so their statistics share one feature-cache entry."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from pg2_pipeline.inputs.cache import TensorCache

BATCH = 64


def seeded_subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted row numbers: all ``n`` rows, or ``limit`` of them drawn with ``seed``."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 7]).choice(n, size=limit, replace=False))


def training_images(paths, limit: int | None, seed: int) -> Iterator[torch.Tensor]:
    """Batches of uint8 (B, 3, H, W) training images: the FID real set."""
    cache = TensorCache.open(paths.cache, "train")
    rows = seeded_subset(len(cache.image_ids), limit, seed)
    for start in range(0, len(rows), BATCH):
        chunk = np.sort(rows[start : start + BATCH])
        yield torch.from_numpy(np.ascontiguousarray(cache.images[chunk])).permute(0, 3, 1, 2)
