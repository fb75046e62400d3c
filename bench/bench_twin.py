"""Twin renderer throughput: images per second per core for render + JPEG encode.

Run: ``.venv/bin/python bench/bench_twin.py`` — prints one JSON object.

Measured in one process with ``cv2.setNumThreads(1)`` (what each build worker does) over a few
hundred real annotated poses, against two baselines measured in the same run:

* ``encode_only``: JPEG-encode a precomputed background — the floor no renderer can beat;
* ``naive``: the same drawing without the renderer's caches (scene and appearance rebuilt for
  every image), i.e. what a straightforward implementation pays.

Scene caches are warmed once per camera / studio before timing (a build pays that once per
worker); identities' looks are computed as they come. Each figure is the best of ``--repeats``
runs because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np

from pg2_pipeline.data.annotations import keypoints_array, standard_file
from pg2_pipeline.data.names import parse_fashion_flat
from pg2_pipeline.data.twin import appearance, scene
from pg2_pipeline.data.twin.plan import TwinImage, _market_name
from pg2_pipeline.data.twin.render import encode_jpeg, render_twin_image, render_twin_rgb
from pg2_pipeline.datasets import dataset_spec

TARGET = 1000.0  # images/s per core at 128x64 (render + encode)
SEED, QUALITY = 1234, 95


def _items(dataset: str, n: int) -> list[TwinImage]:
    stem = "market_annotation_train" if dataset == "market" else "fashion_annotation_test"
    table = standard_file(stem)
    names, kps = table.column("name").to_pylist(), keypoints_array(table)
    # A contiguous run of rows sorted by name: a few dozen identities, all cameras and views,
    # grouped by identity like a build's chunks.
    order = sorted(range(len(names)), key=names.__getitem__)
    start = len(order) // 3
    items = []
    for i in order[start : start + n]:
        if dataset == "market":
            m = _market_name(names[i])
            items.append(TwinImage(names[i], "", "train", m.person_id, m.camera, kps[i]))
        else:
            items.append(TwinImage(names[i], "", "train", parse_fashion_flat(names[i]).person_id, None, kps[i]))
    return items


def _clear_identity_caches() -> None:
    appearance.appearance_for.cache_clear()
    appearance.pattern_tile.cache_clear()


def _rate(fn, items, repeats: int, before=None) -> float:
    best = 0.0
    for _ in range(repeats):
        if before:
            before()
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        best = max(best, len(items) / (time.perf_counter() - t0))
    return round(best, 1)


def bench(dataset: str, n: int, repeats: int) -> dict:
    items = _items(dataset, n)
    spec = dataset_spec(dataset)
    for it in items:  # warm the per-camera / per-studio scenes only
        if dataset == "market":
            scene.market_scene(SEED, it.camera, spec.height, spec.width)
        else:
            scene.studio_scene(SEED, scene.studio_preset(SEED, it.person_id), spec.height, spec.width)
    background = render_twin_rgb(
        TwinImage("bg", "", "train", "bg", 1 if dataset == "market" else None, np.full((18, 2), -1, np.float32)),
        dataset,
        SEED,
    )

    def naive(it: TwinImage) -> bytes:
        scene.market_scene.cache_clear()
        scene.studio_scene.cache_clear()
        _clear_identity_caches()
        return render_twin_image(it, dataset, SEED, QUALITY)

    full = _rate(lambda it: render_twin_image(it, dataset, SEED, QUALITY), items, repeats, _clear_identity_caches)
    render_only = _rate(lambda it: render_twin_rgb(it, dataset, SEED), items, repeats, _clear_identity_caches)
    encode_only = _rate(lambda it: encode_jpeg(background, QUALITY, "bg"), items, repeats)
    naive_rate = _rate(naive, items[: max(20, n // 10)], 1)
    return {
        "size": f"{spec.height}x{spec.width}",
        "poses": len(items),
        "identities": len({it.person_id for it in items}),
        "render_encode_images_per_s": full,
        "render_only_images_per_s": render_only,
        "baseline_encode_only_images_per_s": encode_only,
        "baseline_naive_uncached_images_per_s": naive_rate,
        "ms_per_image": round(1000.0 / full, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    market = bench("market", args.poses, args.repeats)
    fashion = bench("deepfashion", args.poses, args.repeats)
    result = {
        "benchmark": "twin render + JPEG encode, one process, cv2.setNumThreads(1)",
        "jpeg_quality": QUALITY,
        "market": market,
        "deepfashion": fashion,
        "target_market_images_per_s_per_core": TARGET,
        "target_met": market["render_encode_images_per_s"] >= TARGET,
        "torch_imported": "torch" in sys.modules,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
