"""What the evaluation computes on *real* images, computed once per machine and reused: the FID
statistics of a real set, and per-image results (Inception features, BlazePose poses) of real
images such as the copy baseline's condition images. Files live under
``ProjectPaths.local_cache.features`` (``<project>/.pg2_cache/features/``, ignored by git and DVC,
safe to delete).

Keys
----
* **An image** is identified by the BLAKE2b-128 digest of its uint8 pixels as fed to the network,
  in (C, H, W) order, prefixed by its shape: the same picture at another size, or decoded
  differently, is another image.
* **A real set** is identified by the multiset of its images' digests — sorted, so the key does
  not depend on the order of the images or on how they are batched (FID statistics do not
  either, up to float64 rounding) — together with the **feature protocol**: a string naming the
  network, its weights' hash, the preprocessing and the input size (e.g.
  :attr:`pg2_pipeline.evaluate.fid.InceptionFeatures.protocol`). Any change to either gives
  another key, hence another file: nothing is ever looked up under a stale key.

Hashing is cheap next to what it saves: ~30 µs per 128×64 image, against ~70 ms of Inception.

Files
-----
``real-<key>.npz``: ``n``, ``mean`` and ``scatter`` (float64, exactly :class:`FIDStats`'
fields, so a hit returns bit-identical statistics) with ``key``, ``protocol`` and ``format``
stored inside. ``images-<kind>-<protocol hash>.npz``: per-image ``digests`` (N, 16) and
``vectors`` (N, D) float32 of one protocol; kind ``inception-outputs`` (:data:`OUTPUTS_KIND`)
holds the Inception features of the latest evaluation's saved outputs only (each evaluation
replaces it, so generated images, new at every training, never pile up), for the ``score``
asset that scores those very files next. Every file holds a BLAKE2b checksum of its arrays
(``np.load`` does not check the zip CRC) and is written atomically (temporary file + rename).
On reading, a file that is unreadable, damaged (checksum), of another format, key or protocol,
or of the wrong shape is reported with a printed message and recomputed, never trusted. Two
processes saving one per-image file at once may drop each other's new entries (the last rename
wins); those are recomputed next time.

Within one run, lookups see only what the files held when the run started, not what the run
added: a sharded evaluation (each rank its own store) then reuses exactly what a single
process would, and gets its numbers.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pg2_pipeline.evaluate.fid import FEATURE_DIM, FID_PROTOCOL, FIDStats

FORMAT = 1
DIGEST_BYTES = 16
OUTPUTS_KIND = "inception-outputs"  # the latest evaluation's saved outputs (replaced each time)


# ---------------------------------------------------------------------------------------- keys


def image_digests(images: Tensor | np.ndarray) -> np.ndarray:
    """(B, 16) uint8: the BLAKE2b-128 of each uint8 (B, C, H, W) image's shape and pixels."""
    array = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 4:
        raise ValueError(f"image digests take uint8 (B, C, H, W) images, got {array.dtype} {array.shape}")
    header = "x".join(str(s) for s in array.shape[1:]).encode()
    out = np.empty((len(array), DIGEST_BYTES), np.uint8)
    for i, image in enumerate(array):
        h = hashlib.blake2b(header, digest_size=DIGEST_BYTES)
        h.update(np.ascontiguousarray(image).data)
        out[i] = np.frombuffer(h.digest(), np.uint8)
    return out


def set_key(digests: np.ndarray, protocol: str) -> str:
    """The real set's key: 32 hex digits over the protocol and its images' sorted digests."""
    h = hashlib.blake2b(f"format {FORMAT}\n{protocol}\n{len(digests)}\n".encode(), digest_size=DIGEST_BYTES)
    for digest in sorted(bytes(d) for d in digests):
        h.update(digest)
    return h.hexdigest()


def protocol_hash(protocol: str) -> str:
    return hashlib.blake2b(protocol.encode(), digest_size=8).hexdigest()


# ------------------------------------------------------------------------------- file reading


class _Untrusted(Exception):
    """A cache file that must not be used (the message says why)."""


def _read_npz(path: Path, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [f for f in fields if f not in z.files]
            if missing:
                raise _Untrusted(f"fields {missing} missing")
            return {f: z[f] for f in fields}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # truncated, flipped bits, not an npz
        raise _Untrusted(f"unreadable ({type(e).__name__}: {e})") from None


def _check_header(values: dict, protocol: str, key: str | None = None) -> None:
    if int(values["format"]) != FORMAT:
        raise _Untrusted(f"format {int(values['format'])}, expected {FORMAT}")
    if str(values["protocol"]) != protocol:
        raise _Untrusted(f"protocol {str(values['protocol'])!r}, expected {protocol!r}")
    if key is not None and str(values["key"]) != key:
        raise _Untrusted(f"key {str(values['key'])} inside, expected {key}")


def _checksum(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _check_sum(values: dict, *names: str) -> None:
    # np.load does not verify the zip CRC of the arrays it reads: a flipped bit would pass
    if str(values["checksum"]) != _checksum(*(values[n] for n in names)):
        raise _Untrusted("checksum mismatch (the file was altered or damaged)")


def _write_npz(path: Path, payload: tuple[str, ...], **arrays) -> None:
    """An .npz with a checksum over the ``payload`` arrays, written atomically."""
    from pg2_pipeline.fileio import atomic_path

    arrays["checksum"] = np.str_(_checksum(*(arrays[n] for n in payload)))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


# ---------------------------------------------------------------------------- per-image store


class ImageStore:
    """Per-image vectors of one ``kind`` (``inception``, ``blazepose``) under one protocol, keyed
    by :func:`image_digests`. ``folder=None``: an always-empty store that saves nothing.
    ``replace``: :meth:`save` writes this run's vectors alone instead of merging them in."""

    def __init__(self, folder: Path | None, kind: str, protocol: str, dim: int, log: Callable[[str], None] = print,
                 replace: bool = False):  # fmt: skip
        self.kind, self.protocol, self.dim, self.log, self.replace = kind, protocol, dim, log, replace
        self.path = None if folder is None else Path(folder) / f"images-{kind}-{protocol_hash(protocol)}.npz"
        self._index: dict[bytes, int] = {}
        self._vectors = np.empty((0, dim), np.float32)
        self._new: dict[bytes, np.ndarray] = {}
        self.reused = self.computed = 0
        if self.path is not None and self.path.is_file():
            try:
                self._index, self._vectors = self._load(self.path)
            except _Untrusted as e:
                self.log(f"feature cache: ignoring {self.path} ({e}); its entries will be recomputed")

    def _load(self, path: Path) -> tuple[dict[bytes, int], np.ndarray]:
        values = _read_npz(path, ("format", "protocol", "digests", "vectors", "checksum"))
        _check_header(values, self.protocol)
        _check_sum(values, "digests", "vectors")
        digests, vectors = values["digests"], values["vectors"]
        if digests.dtype != np.uint8 or digests.ndim != 2 or digests.shape[1] != DIGEST_BYTES:
            raise _Untrusted(f"digests of shape {digests.shape} ({digests.dtype})")
        if vectors.dtype != np.float32 or vectors.shape != (len(digests), self.dim):
            expected = (len(digests), self.dim)
            raise _Untrusted(f"vectors of shape {vectors.shape} ({vectors.dtype}), expected {expected}")
        return {bytes(d): i for i, d in enumerate(digests)}, vectors

    def __len__(self) -> int:
        return len(self._index)

    def get(self, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found (B,) bool, vectors (B, D) float32, NaN where not found) from the file as loaded."""
        rows = np.array([self._index.get(bytes(d), -1) for d in digests], dtype=np.int64)
        found = rows >= 0
        out = np.full((len(digests), self.dim), np.nan, np.float32)
        out[found] = self._vectors[rows[found]]
        self.reused += int(found.sum())
        return found, out

    def put(self, digests: np.ndarray, vectors: np.ndarray) -> None:
        """Records newly computed vectors (saved by :meth:`save`, not visible to :meth:`get`)."""
        vectors = np.asarray(vectors, np.float32).reshape(len(digests), self.dim)
        for d, v in zip(digests, vectors, strict=True):
            self._new[bytes(d)] = v
        self.computed += len(digests)

    def save(self) -> int:
        """Merges the new vectors into the file (re-read, so another run's entries survive), or
        with ``replace`` writes them alone; returns how many were added."""
        if self.path is None:
            return 0
        if not self._new:
            if self.replace:  # nothing of this run: no entries of an earlier one either
                self.path.unlink(missing_ok=True)
            return 0
        index, vectors = {}, np.empty((0, self.dim), np.float32)
        if self.path.is_file() and not self.replace:
            try:
                index, vectors = self._load(self.path)
            except _Untrusted as e:
                self.log(f"feature cache: replacing {self.path} ({e})")
        new = {d: v for d, v in self._new.items() if d not in index}
        if new:
            digests = np.array([np.frombuffer(d, np.uint8) for d in [*index, *new]], np.uint8)
            merged = np.concatenate([vectors, np.stack(list(new.values()))])  # vectors may be (0, D)
            header = {"format": np.int64(FORMAT), "protocol": np.str_(self.protocol)}
            _write_npz(self.path, ("digests", "vectors"), **header, digests=digests, vectors=merged)
        self._new.clear()
        return len(new)


def cached_call(
    fn: Callable[[Tensor], Tensor],
    images: Tensor,
    store: ImageStore | None,
    digests: np.ndarray | None = None,
    also: ImageStore | None = None,
) -> Tensor:
    """``fn(images)`` (B, D) with the rows of images already in ``store`` (or in the read-only
    ``also``) taken from it; only the others are computed (in one call, in their order) and
    recorded in ``store``."""
    if store is None or store.path is None:
        return fn(images)
    digests = image_digests(images) if digests is None else digests
    found, vectors = store.get(digests)
    if also is not None and not found.all():
        extra, extra_vectors = also.get(digests[~found])
        rows = np.flatnonzero(~found)[extra]
        vectors[rows], found[rows] = extra_vectors[extra], True
    if found.all():
        return torch.from_numpy(vectors)
    missing = torch.from_numpy(~found)
    computed = fn(images[missing.to(images.device)]).detach().float().cpu()
    store.put(digests[~found], computed.numpy())
    out = torch.from_numpy(vectors)
    out[missing] = computed
    return out


# ----------------------------------------------------------------------------- real-set stats


@dataclass(frozen=True)
class CacheInfo:
    """Where a real set's statistics came from (recorded in the evaluation summary)."""

    status: str  # "hit" (read from the file), "miss" (computed, then written), "off" (no cache folder)
    key: str  # the real set's key (file real-<key>.npz)
    images: int
    computed_images: int  # images whose features were computed (a miss: the rest came from a per-image store)
    seconds: float
    note: str = ""  # why an existing file was not used

    def as_dict(self) -> dict:
        return {"status": self.status, "key": self.key, "images": self.images, "computed_images": self.computed_images}


def _batches(source) -> Callable[[], Iterable[Tensor]]:
    """A re-iterable source of batches: a callable giving a fresh iterable, or a sequence (an
    iterator that can be read once is read into a list)."""
    if callable(source):
        return source
    if isinstance(source, Iterator):
        source = list(source)
    return lambda: source


def inception_store(features, cache_dir: Path | None) -> ImageStore | None:
    """Per-image FID Inception features of real images (the real set, the copy baseline's
    images), by content, under ``features.protocol``; None without features or a cache folder."""
    if features is None or cache_dir is None:
        return None
    return ImageStore(cache_dir, "inception", features.protocol, FEATURE_DIM)


def real_stats(
    batches,
    extractor: Callable[[Tensor], Tensor],
    cache_dir: Path | None,
    *,
    protocol: str | None = None,
    store: ImageStore | None = None,
    stats_protocol: str = FID_PROTOCOL,
    log: Callable[[str], None] = print,
) -> tuple[FIDStats, CacheInfo]:
    """FID statistics of a real set: uint8 (B, 3, H, W) ``batches`` (a callable giving a fresh
    iterable, or a sequence) featured by ``extractor`` under ``protocol`` (default
    ``extractor.protocol``). Read from ``cache_dir/real-<key>.npz`` when a valid entry exists,
    else computed (images in ``store`` reused) and written there. ``cache_dir=None``: computed.
    ``stats_protocol``: the label of the returned :class:`FIDStats` (what :func:`fid` matches
    against the generated set's statistics)."""
    start = time.perf_counter()
    protocol = protocol or getattr(extractor, "protocol", None)
    if not protocol:
        raise ValueError("real_stats needs the feature protocol: pass protocol= or an extractor with .protocol")
    source = _batches(batches)
    digests = [image_digests(b) for b in source()]
    all_digests = np.concatenate(digests) if digests else np.empty((0, DIGEST_BYTES), np.uint8)
    key = set_key(all_digests, protocol)
    path = None if cache_dir is None else Path(cache_dir) / f"real-{key}.npz"
    note = ""
    if path is not None and path.is_file():
        try:
            stats = _load_stats(path, key, protocol, stats_protocol)
            return stats, CacheInfo("hit", key, stats.n, 0, round(time.perf_counter() - start, 3))
        except _Untrusted as e:
            note = f"ignored {path.name}: {e}"
            log(f"feature cache: ignoring {path} ({e}); recomputing the real set's statistics")
    stats, computed = None, 0
    for batch, batch_digests in zip(source(), digests, strict=True):
        before = store.computed if store is not None else 0
        features = cached_call(extractor, batch, store, batch_digests)
        computed += (store.computed - before) if store is not None and store.path is not None else len(batch)
        stats = (stats or FIDStats.empty(features.shape[1], "cpu", stats_protocol)).update(features.cpu())
    if stats is None or stats.n < 2:
        raise ValueError(f"the FID real set needs at least 2 images, got {0 if stats is None else stats.n}")
    if path is not None:
        _write_npz(path, ("n", "mean", "scatter"), format=np.int64(FORMAT), key=np.str_(key),
                   protocol=np.str_(protocol), n=np.int64(stats.n), mean=stats.mean.cpu().numpy(),
                   scatter=stats.scatter.cpu().numpy())  # fmt: skip
    status = "off" if path is None else "miss"
    return stats, CacheInfo(status, key, stats.n, computed, round(time.perf_counter() - start, 3), note)


def _load_stats(path: Path, key: str, protocol: str, stats_protocol: str) -> FIDStats:
    values = _read_npz(path, ("format", "key", "protocol", "n", "mean", "scatter", "checksum"))
    _check_header(values, protocol, key)
    _check_sum(values, "n", "mean", "scatter")
    n, mean, scatter = int(values["n"]), values["mean"], values["scatter"]
    d = mean.shape[0] if mean.ndim == 1 else -1
    if mean.dtype != np.float64 or scatter.dtype != np.float64 or d < 1 or scatter.shape != (d, d) or n < 2:
        raise _Untrusted(f"n {n}, mean {mean.shape} {mean.dtype}, scatter {scatter.shape} {scatter.dtype}")
    if not (np.isfinite(mean).all() and np.isfinite(scatter).all()):
        raise _Untrusted("non-finite statistics")
    return FIDStats(n, torch.from_numpy(mean), torch.from_numpy(scatter), stats_protocol)
