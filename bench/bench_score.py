"""Scoring speed (``pg2 score``): pairs/s of each protocol at 128×64 (Market) and 256×176
(DeepFashion), and the estimated time of the 12,000 standard Market pairs under every protocol.

    .venv/bin/python bench/bench_score.py            # ~2 min on 2 cores; prints one JSON object
    .venv/bin/python bench/bench_score.py --pairs 256

Synthetic uint8 pairs go through the real scorer (:class:`pg2_pipeline.score.core.Scorer`, the
evaluation's SSIM / PSNR / L1 / LPIPS / Inception code) one protocol at a time, then all
protocols together (what ``pg2 score`` runs: LPIPS and Inception features are shared by
protocols that prepare images alike). Reading the files (a PNG output + a JPEG target per
pair) is timed separately on files written here. Baseline, in the same run: scikit-image's
``structural_similarity`` called per pair (what the published scripts do) for the SSIM
variants of each protocol. FID's real set is not timed: it comes from the feature cache
(computed once per real set); generated images are featured here.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import cv2
import numpy as np
import torch

from pg2_pipeline.evaluate.fid import InceptionFeatures
from pg2_pipeline.evaluate.lpips import LPIPS
from pg2_pipeline.runtime import cpu_model
from pg2_pipeline.score.core import PairBatch, Scorer
from pg2_pipeline.score.protocols import PROTOCOLS, ssim_variant

MARKET_PAIRS = 12_000
BATCH = 32


def batches(n: int, size: tuple[int, int], seed: int = 0) -> list[PairBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, BATCH):
        b = min(BATCH, n - start)
        target = torch.from_numpy(rng.integers(0, 256, (b, 3, *size), dtype=np.uint8))
        noise = torch.from_numpy(rng.integers(-30, 30, (b, 3, *size)))
        generated = (target.int() + noise).clamp(0, 255).to(torch.uint8)
        yx = torch.from_numpy(rng.uniform(0, min(size), (b, 18, 2)).astype(np.float32))
        out.append(PairBatch([(f"f{start + i}", f"t{start + i}") for i in range(b)], generated, target, yx, yx))
    return out


def time_scorer(protocols, dataset, data, nets) -> float:
    features = {"tf-inception-2015-12-05/pool3": nets[1]}
    scorer = Scorer(protocols, dataset, torch.device("cpu"), lpips_net=nets[0], fid_features=features)
    scorer.update(data[0])  # warm-up (first-call allocations)
    t0 = time.perf_counter()
    for b in data:
        scorer.update(b)
    return sum(len(b.keys) for b in data) / (time.perf_counter() - t0)


def skimage_baseline(protocol, dataset, data, limit: int = 64) -> float:
    from skimage.metrics import structural_similarity

    g = protocol.on(dataset)
    pairs = [(gen, tgt) for b in data for gen, tgt in zip(b.generated, b.target, strict=True)][:limit]
    t0 = time.perf_counter()
    for gen, tgt in pairs:
        gen = gen[..., : g.size[1]].permute(1, 2, 0).numpy().astype(np.float64)
        tgt = tgt[..., : g.size[1]].permute(1, 2, 0).numpy().astype(np.float64)
        for variant in (protocol.ssim, *protocol.ssim_extra):
            p = ssim_variant(variant)
            kwargs = {"data_range": p.data_range * p.scale if p.data_range else gen.max() - gen.min()}
            if p.window == "gaussian":
                kwargs |= {"gaussian_weights": True, "sigma": p.sigma, "use_sample_covariance": False}
            else:
                kwargs["win_size"] = p.win_size
            structural_similarity(tgt, gen, channel_axis=-1, **kwargs)
    return len(pairs) / (time.perf_counter() - t0)


def time_reading(n: int, size: tuple[int, int]) -> float:
    """Pairs/s of reading a PNG output and a JPEG target (what the files layout does per pair)."""
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            cv2.imwrite(f"{tmp}/{i}.png", image)
            cv2.imwrite(f"{tmp}/{i}.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        t0 = time.perf_counter()
        for i in range(n):
            cv2.cvtColor(cv2.imread(f"{tmp}/{i}.png"), cv2.COLOR_BGR2RGB)
            cv2.cvtColor(cv2.imread(f"{tmp}/{i}.jpg"), cv2.COLOR_BGR2RGB)
        return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=128, help="synthetic pairs per measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nets = (LPIPS.pretrained(), InceptionFeatures())
    out = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__, "pairs": args.pairs,
           "load_average": os.getloadavg(), "datasets": {}}  # fmt: skip
    for dataset, size in (("market", (128, 64)), ("deepfashion", (256, 176))):
        data = batches(args.pairs, size)
        rows = {}
        for name, protocol in PROTOCOLS.items():
            accepts = [tuple(s) for s in protocol.on(dataset).accepts]
            if size not in accepts:
                rows[name] = {"skipped": f"takes {accepts}, not {size}"}
                continue
            rows[name] = {
                "pairs_per_s": round(time_scorer([protocol], dataset, data, nets), 2),
                "ssim_baseline_skimage_pairs_per_s": round(skimage_baseline(protocol, dataset, data), 2),
                "fid": protocol.fid is not None and protocol.fid.features == "tf-inception-2015-12-05/pool3",
            }
        usable = [p for n, p in PROTOCOLS.items() if "skipped" not in rows[n]]
        together = time_scorer(usable, dataset, data, nets)
        reading = time_reading(min(args.pairs, 128), size)
        per_pair = 1 / together + 1 / reading
        out["datasets"][dataset] = {
            "size": list(size),
            "protocols": rows,
            "all_protocols_pairs_per_s": round(together, 2),
            "file_reading_pairs_per_s": round(reading, 1),
            "end_to_end_pairs_per_s": round(1 / per_pair, 2),
        }
    market = out["datasets"]["market"]
    seconds = MARKET_PAIRS / market["end_to_end_pairs_per_s"]
    out["estimate_market_12000_all_protocols_no_pckh"] = {
        "seconds": round(seconds), "minutes": round(seconds / 60, 1), "goal_minutes": 30,
        "assumes": "real-set FID features cached (feature cache); generated images featured once for all protocols",
    }  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
