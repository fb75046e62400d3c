"""The end of ``make demo``: one pose transfer with the registered generator, through the same
code as ``pg2 generate``, on a test pair of the twin (condition image + the target's pose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pg2_pipeline import fileio, summaries, viz
from pg2_pipeline.config import load_params
from pg2_pipeline.inputs.manifests import manifest_info, read_manifest
from pg2_pipeline.paths import ProjectPaths


def generate_example(root: Path) -> None:
    from pg2_pipeline.inference import PoseTransfer
    from pg2_pipeline.tracking import tracking_uri

    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    registration = summaries.read(paths.evaluation.registration, summaries.Registration)
    uri = f"models:/{registration.name}@champion" if registration.champion else registration.model_uri
    row = read_manifest(paths.manifest_table("test")).slice(0, 1).to_pylist()[0]
    dataset_root = paths.resolve(params.image_index.root)
    demo = paths.demo
    yx = np.stack([row["to_keypoints_y"], row["to_keypoints_x"]], -1)
    size = manifest_info(paths.manifest_table("test"))["image_size"]
    fileio.write_json(demo.target_pose, {"size": list(size), "keypoints": yx.tolist()})
    condition = dataset_root / row["from_path"]
    transfer = PoseTransfer(uri, tracking_uri=tracking_uri(params, paths.root))
    out = transfer.generate(condition, pose=demo.target_pose)
    output = transfer.save(out, demo.generated)
    target = viz.read_rgb(dataset_root / row["to_path"])
    tiles = ((viz.read_rgb(condition), "condition"), (out, "generated"), (target, "target"))
    fileio.write_png(demo.example, viz.grid([viz.label(viz.upscale(im, 3), t) for im, t in tiles], cols=3))
    rel = lambda p: p.relative_to(paths.root) if p.is_relative_to(paths.root) else p
    print("\n==> pose transfer with the registered model (the same as):")
    print(f"    pg2 generate --model {uri} --image {rel(condition)} \\")
    print(f"        --pose {rel(demo.target_pose)} -o {rel(output)}")
    print(f"    condition | generated | target: {rel(demo.example)}")
