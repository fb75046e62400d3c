"""Throughput of the evaluation metrics, with scikit-image's per-pair SSIM as the baseline.

Run: ``.venv/bin/python bench/bench_metrics.py`` — prints one JSON object:

* ``ssim``: pairs/s of :func:`pg2_pipeline.evaluate.metrics.ssim` (one batch call) and of a
  per-pair ``skimage.metrics.structural_similarity`` loop with the same protocol's arguments,
  per protocol, at 128×64 (Market) and 256×256 (DeepFashion), and the speed-up;
* ``lpips``: AlexNet-LPIPS pairs/s at both sizes;
* ``fid_features``: TF-Inception pool3 images/s (resize to 299 included) at both sizes, of the
  network the evaluation runs (``folded``: evaluate/inception_net.py) and of the TorchScript file
  as shipped (``torchscript``, the baseline), with the speed-up.

Each rate is the median of ``REPEATS`` timed runs of at least ``MIN_SECONDS`` after a warm-up,
on ``THREADS`` CPU threads (and on CUDA too when one is present). Small counts: a couple of
minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from pg2_pipeline.evaluate.fid import InceptionFeatures  # noqa: E402
from pg2_pipeline.evaluate.lpips import LPIPS  # noqa: E402
from pg2_pipeline.evaluate.metrics import SSIM_PROTOCOLS, ssim  # noqa: E402
from pg2_pipeline.runtime import cpu_model  # noqa: E402
from tests.evaluate.reference_ssim import skimage_ssim  # noqa: E402

THREADS = 2
SIZES = {"128x64": (128, 64), "256x256": (256, 256)}
SSIM_BATCH = {"128x64": 256, "256x256": 32}
NN_BATCH = 16
MIN_SECONDS = 0.5
REPEATS = 3


def _rate(fn, items: int, sync=lambda: None) -> float:
    """Median items/s over REPEATS runs of >= MIN_SECONDS (after one warm-up call)."""
    fn()
    sync()
    rates = []
    for _ in range(REPEATS):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < MIN_SECONDS:
            fn()
            sync()
            done += items
        rates.append(done / elapsed)
    return round(statistics.median(rates), 1)


def _skimage_call(g: np.ndarray, t: np.ndarray, protocol: str) -> float:
    """The published per-pair call of each protocol, on (H, W, 3) uint8 arrays."""
    return skimage_ssim(g.transpose(2, 0, 1), t.transpose(2, 0, 1), protocol)


def _pairs(size: tuple[int, int], n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 256, (n, 3, *size), dtype=np.uint8)
    g = np.clip(t + rng.normal(0, 20, t.shape), 0, 255).astype(np.uint8)
    return torch.from_numpy(g), torch.from_numpy(t)


def bench_ssim(device: str, sync) -> dict:
    out = {}
    for name, size in SIZES.items():
        g, t = _pairs(size, SSIM_BATCH[name])
        g, t = g.to(device), t.to(device)
        gn = g[:8].permute(0, 2, 3, 1).cpu().numpy()
        tn = t[:8].permute(0, 2, 3, 1).cpu().numpy()
        for protocol in SSIM_PROTOCOLS:
            torch_rate = _rate(lambda: ssim(g, t, protocol), len(g), sync)
            row = {"torch_pairs_per_s": torch_rate}
            if device == "cpu":
                sk = _rate(lambda: [_skimage_call(a, b, protocol) for a, b in zip(gn, tn)], len(gn))
                row |= {"skimage_loop_pairs_per_s": sk, "speedup": round(torch_rate / sk, 2)}
            out[f"{protocol}@{name}"] = row
    return out


def bench_lpips(device: str, sync) -> dict:
    model = LPIPS.pretrained(device=device)
    out = {}
    for name, size in SIZES.items():
        g, t = (x.to(device) for x in _pairs(size, NN_BATCH))
        out[name] = {"pairs_per_s": _rate(lambda: model.score(g, t), len(g), sync), "batch": len(g)}
    return out


def bench_fid(device: str, sync) -> dict:
    nets = {
        k: InceptionFeatures(device=device, batch_size=NN_BATCH, folded=k == "folded")
        for k in ("folded", "torchscript")
    }
    out = {}
    for name, size in SIZES.items():
        g, _ = _pairs(size, NN_BATCH)
        g = g.to(device)
        rates = {k: _rate(lambda f=f: f(g), len(g), sync) for k, f in nets.items()}
        out[name] = {
            "images_per_s": rates,
            "speedup": round(rates["folded"] / rates["torchscript"], 2),
            "batch": len(g),
        }
    return out


def main() -> None:
    torch.set_num_threads(THREADS)
    devices = {"cpu": lambda: None}
    if torch.cuda.is_available():
        devices["cuda"] = torch.cuda.synchronize
    result = {
        "threads": THREADS,
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "ssim_batch": SSIM_BATCH,
        "nn_batch": NN_BATCH,
    }
    for device, sync in devices.items():
        result[device] = {
            "ssim": bench_ssim(device, sync),
            "lpips": bench_lpips(device, sync),
            "fid_features": bench_fid(device, sync),
        }
    if torch.cuda.is_available():
        result["cuda_device"] = torch.cuda.get_device_name()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
