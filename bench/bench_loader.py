"""Training-loader throughput: batches from the tensor cache against a per-sample baseline.

Run: ``.venv/bin/python bench/bench_loader.py`` — prints one JSON object.

A small twin is rendered to JPEG files in a temporary folder (Market 128×64 and DeepFashion
256×256, real annotated poses), the tensor cache is built from them, and we time:

* ``cache``: :class:`pg2_pipeline.inputs.loader.PairLoader` batches (gather from the memory-mapped
  uint8 cache, flips, to [-1, 1] floats, batched torch pose maps + masks);
* ``baseline``: what the published implementations do per sample: decode both JPEGs with
  OpenCV, convert to float, draw the map and mask with the per-sample numpy reference.

Targets: >= 5,000 pairs/s at 128×64 on 2 cores and >= 10× the baseline.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests/ is a plain folder holding the numpy reference
    sys.path.insert(0, str(ROOT))

from pg2_pipeline.config import load_params  # noqa: E402
from pg2_pipeline.data.twin import plan_twin, render_twin_image  # noqa: E402
from pg2_pipeline.inputs.cache import TensorCache, build_cache  # noqa: E402
from pg2_pipeline.inputs.loader import PairLoader  # noqa: E402
from pg2_pipeline.paths import CachePaths  # noqa: E402
from pg2_pipeline.runtime import keep_large_allocations  # noqa: E402
from tests.pose import reference_maps  # noqa: E402

TARGET_PAIRS_PER_S = 5_000
TARGET_SPEEDUP = 10.0


def _fixture(folder: Path, dataset: str, n_images: int) -> tuple[TensorCache, list[Path], np.ndarray]:
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"].update(dataset=dataset, profile="tiny")
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(folder / "params.yaml")
    items = [it for it in plan_twin(params) if it.split == "train"][:n_images]
    paths = []
    for it in items:
        path = folder / "img" / f"{len(paths):05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_twin_image(it, dataset, params.base.seed, 95))
        paths.append(path)
    h, w = cv2.imread(str(paths[0])).shape[:2]
    kps = np.stack([np.asarray(it.keypoints, np.float32) for it in items])
    cache = CachePaths(folder / "cache")
    build_cache(cache, "train", [it.image_id for it in items], paths, kps, (h, w), {}, workers=1, progress=False)
    return TensorCache.open(cache, "train"), paths, kps


def _time(fn, min_seconds: float = 2.0) -> float:
    """Seconds per call (best of the repeats that fill ``min_seconds``)."""
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(dataset: str, n_images: int, batch_size: int, folder: Path) -> dict:
    cache, paths, kps = _fixture(folder, dataset, n_images)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(paths), size=(4096, 2))
    h, w = cache.size_hw
    loader = PairLoader(cache, pairs, batch_size, seed=0, flip=True)
    step = iter(range(10**9))
    cache_s = _time(lambda: loader.batch(next(step)))

    def baseline_batch() -> None:
        for a, b in pairs[rng.integers(0, len(pairs), batch_size)]:
            cond = cv2.cvtColor(cv2.imread(str(paths[a])), cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1
            tgt = cv2.cvtColor(cv2.imread(str(paths[b])), cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1
            pose_map, pose_mask = reference_maps.pose_map(kps[b], h, w), reference_maps.pose_mask(kps[b], h, w)
            _ = (cond, tgt, pose_map.astype(np.float32) * 2 - 1, pose_mask)

    base_s = _time(baseline_batch)
    cache_rate, base_rate = batch_size / cache_s, batch_size / base_s
    return {
        "dataset": dataset,
        "size": [h, w],
        "batch_size": batch_size,
        "images_in_cache": len(paths),
        "cache_pairs_per_s": round(cache_rate, 1),
        "baseline_pairs_per_s": round(base_rate, 1),
        "speedup": round(cache_rate / base_rate, 1),
    }


def main() -> None:
    torch.set_num_threads(2)
    tuned = keep_large_allocations()  # as training does
    cv2.setNumThreads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, n, batch in (("market", 300, 16), ("market", 300, 64), ("deepfashion", 200, 16)):
            folder = Path(tmp) / f"{dataset}-{batch}"
            folder.mkdir()
            results.append(bench(dataset, n, batch, folder))
    market = [r for r in results if r["dataset"] == "market"]
    print(
        json.dumps(
            {
                "benchmark": "training loader (tensor cache) vs per-sample JPEG decode + numpy maps",
                "machine": {
                    "cpu": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(),
                    "glibc_large_allocations_kept": tuned,
                },
                "results": results,
                "target": {"pairs_per_s_128x64": TARGET_PAIRS_PER_S, "speedup": TARGET_SPEEDUP},
                "target_met": all(
                    r["cache_pairs_per_s"] >= TARGET_PAIRS_PER_S and r["speedup"] >= TARGET_SPEEDUP for r in market
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
