"""The tensor cache: every image of a split decoded once into a memory-mapped uint8 array, plus
its keypoints, so training never decodes JPEGs or parses Parquet in its hot loop.

Per split (file names: :class:`pg2_pipeline.paths.CachePaths`): the images as raw uint8
(N, H, W, 3) RGB in C order (an ``np.memmap``), the keypoints as float32 (N, 18, 2) (y, x) at
the cache's size (-1 = missing), and a JSON header (shape, image ids in row order, params hash).

How an image reaches the cache's size: resized (``cv2.INTER_AREA``) from the dataset's standard
frame, keypoints scaled; or, for the sizes a dataset lists in ``DatasetSpec.crops`` (DeepFashion
256×176), cut out of that frame as a :class:`Crop` with no resampling, keypoints shifted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from pg2_pipeline import fileio
from pg2_pipeline.fileio import atomic_path
from pg2_pipeline.paths import CachePaths
from pg2_pipeline.progress import bar as progress_bar
from pg2_pipeline.skeleton import MISSING, NUM_JOINTS, visible


class CacheError(ValueError):
    """A tensor cache that is missing, incomplete or does not match its header."""


def scale_keypoints(yx: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Keypoints of an image resized from ``src_hw`` to ``dst_hw``; missing joints stay missing."""
    if tuple(src_hw) == tuple(dst_hw):
        return yx.astype(np.float32, copy=True)
    factor = np.array([dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]], np.float32)
    out = yx.astype(np.float32) * factor
    out[~visible(yx)] = MISSING
    return out


@dataclass(frozen=True)
class Crop:
    """A window of the standard frame, kept without resampling: the image is brought to
    ``frame_hw`` (resized only if it is not that size already, as without a crop), then rows
    ``top..top+H`` and columns ``left..left+W`` of it are kept for a cache of size (H, W)."""

    frame_hw: tuple[int, int]  # the frame the annotation coordinates use
    top: int
    left: int

    def check(self, size_hw: tuple[int, int]) -> None:
        h, w = size_hw
        if self.top < 0 or self.left < 0 or self.top + h > self.frame_hw[0] or self.left + w > self.frame_hw[1]:
            raise ValueError(f"a {h}x{w} window at (top {self.top}, left {self.left}) does not fit {self.frame_hw}")

    def image(self, image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        h, w = size_hw
        return np.ascontiguousarray(image[self.top : self.top + h, self.left : self.left + w])

    def keypoints(self, yx: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        """Keypoints (frame coordinates) in the window: shifted by (top, left); a joint that
        falls outside the window becomes missing, like a joint the annotator did not see."""
        out = yx.astype(np.float32) - np.array([self.top, self.left], np.float32)
        inside = (out >= 0).all(axis=-1) & (out[..., 0] < size_hw[0]) & (out[..., 1] < size_hw[1])
        out[~(visible(yx) & inside)] = MISSING
        return out

    def describe(self) -> dict:
        """For the cache header and the manifests' metadata."""
        return {"frame": list(self.frame_hw), "top": self.top, "left": self.left}


def _decode(path: Path, size_hw: tuple[int, int], crop: Crop | None = None) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CacheError(f"{path}: cannot decode image while building the tensor cache")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    frame_hw = crop.frame_hw if crop is not None else tuple(size_hw)
    if image.shape[:2] != tuple(frame_hw):
        image = cv2.resize(image, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_AREA)
    return crop.image(image, size_hw) if crop is not None else image


def _fill(args: tuple[str, tuple[int, int, int, int], int, list[str], Crop | None]) -> int:
    """Worker: decodes ``paths`` into rows ``start..`` of the memmap file."""
    file, shape, start, paths, crop = args
    cv2.setNumThreads(1)
    images = np.memmap(file, dtype=np.uint8, mode="r+", shape=shape)
    for i, p in enumerate(paths):
        images[start + i] = _decode(Path(p), shape[1:3], crop)
    images.flush()
    return len(paths)


def build_cache(
    folder: CachePaths,
    split: str,
    image_ids: list[str],
    paths: list[Path],
    keypoints: np.ndarray,
    size_hw: tuple[int, int],
    meta: dict,
    workers: int = 1,
    progress: bool = True,
    crop: Crop | None = None,
) -> dict:
    """Writes the cache files of one split atomically; ``keypoints`` already at ``size_hw``
    (for a ``crop``: already in the window, :meth:`Crop.keypoints`)."""
    n, (h, w) = len(image_ids), size_hw
    if crop is not None:
        crop.check(size_hw)
    shape = (n, h, w, 3)
    with atomic_path(folder.images(split)) as tmp:
        if n == 0:  # an empty split (no validation identities): an empty file, no memmap
            tmp.write_bytes(b"")
        else:
            np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape).flush()
        chunk = 256
        jobs = [(str(tmp), shape, s, [str(p) for p in paths[s : s + chunk]], crop) for s in range(0, n, chunk)]
        bar = progress_bar(n, f"cache {split}", "img", enabled=progress)
        if workers > 1 and len(jobs) > 1:
            with get_context("spawn").Pool(workers) as pool:
                for done in pool.imap_unordered(_fill, jobs):
                    bar.update(done)
        else:
            for job in jobs:
                bar.update(_fill(job))
        bar.close()
    with atomic_path(folder.keypoints(split)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, keypoints.astype(np.float32))
    header = {"split": split, "shape": list(shape), "dtype": "uint8", "image_ids": image_ids, **meta}
    fileio.write_json(folder.header(split), header)
    return {"images": n, "bytes": int(np.prod(shape))}


@dataclass(frozen=True)
class TensorCache:
    """One split's cache, opened read-only."""

    split: str
    images: np.ndarray  # (N, H, W, 3) uint8 memmap
    keypoints: np.ndarray  # (N, 18, 2) float32
    image_ids: list[str]
    header: dict

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @classmethod
    def open(cls, folder: CachePaths | str | Path, split: str) -> TensorCache:
        folder = folder if isinstance(folder, CachePaths) else CachePaths(Path(folder))
        header_file = folder.header(split)
        if not header_file.is_file():
            raise CacheError(f"{header_file} not found: materialize the manifests asset first")
        header = json.loads(header_file.read_text())
        shape = tuple(header["shape"])
        images_file = folder.images(split)
        expected = int(np.prod(shape))
        if not images_file.is_file() or images_file.stat().st_size != expected:
            size = images_file.stat().st_size if images_file.is_file() else "missing"
            raise CacheError(f"{images_file}: expected {expected} bytes for {shape}, found {size}")
        keypoints = np.load(folder.keypoints(split))
        if keypoints.shape != (shape[0], NUM_JOINTS, 2):
            raise CacheError(
                f"{folder.keypoints(split)}: shape {keypoints.shape}, expected {(shape[0], NUM_JOINTS, 2)}"
            )
        images = (
            np.memmap(images_file, dtype=np.uint8, mode="r", shape=shape) if shape[0] else np.empty(shape, np.uint8)
        )
        return cls(split, images, keypoints, header["image_ids"], header)
