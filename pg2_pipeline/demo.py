"""The end of ``make demo``: one pose transfer with the registered generator, through the same
code as ``pg2 generate``, on a test pair of the twin (condition image + the target's pose)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pg2_pipeline import fileio, viz
from pg2_pipeline.config import load_params
from pg2_pipeline.pairs.manifests import read_manifest
from pg2_pipeline.paths import ProjectPaths


def generate_example(root: Path) -> None:
    from pg2_pipeline.inference import PoseTransfer
    from pg2_pipeline.train.tracking import tracking_uri

    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    registration = json.loads((paths.evaluation_report / "registration.json").read_text())
    uri = f"models:/{registration['name']}@champion" if registration["champion"] else registration["model_uri"]
    row = read_manifest(paths.manifest_table("test")).slice(0, 1).to_pylist()[0]
    dataset_root = paths.resolve(params.image_index.root)
    folder = paths.root / "assets" / "demo"
    pose_file = folder / "target_pose.json"
    yx = np.stack([row["to_keypoints_y"], row["to_keypoints_x"]], -1)
    fileio.write_json(pose_file, {"size": list(_size(paths)), "keypoints": yx.tolist()})
    condition = dataset_root / row["from_path"]
    transfer = PoseTransfer(uri, tracking_uri=tracking_uri(params, paths.root))
    out = transfer.generate(condition, pose=pose_file)
    output = transfer.save(out, folder / "generated.png")
    target = viz.read_rgb(dataset_root / row["to_path"])
    sheet = viz.grid([viz.label(viz.upscale(im, 3), t) for im, t in ((viz.read_rgb(condition), "condition"), (out, "generated"), (target, "target"))], cols=3)
    fileio.write_png(folder / "example.png", sheet)
    print("\n==> pose transfer with the registered model (the same as):")
    print(f"    pg2 generate --model {uri} --image {condition.relative_to(paths.root) if condition.is_relative_to(paths.root) else condition} \\")
    print(f"        --pose {pose_file.relative_to(paths.root)} -o {output.relative_to(paths.root)}")
    print(f"    condition | generated | target: {(folder / 'example.png').relative_to(paths.root)}")


def _size(paths: ProjectPaths) -> tuple[int, int]:
    from pg2_pipeline.pairs.manifests import manifest_info

    return tuple(manifest_info(paths.manifest_table("test"))["image_size"])
