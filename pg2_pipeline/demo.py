"""The end of ``make demo``: one pose transfer with the registered generator, through the same
code as ``pg2 generate``, on a test pair of the twin (condition image + the target's pose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pg2_pipeline import fileio, summaries, viz
from pg2_pipeline.config import load_params
from pg2_pipeline.inputs.manifests import manifest_info, read_manifest
from pg2_pipeline.paths import ProjectPaths


def median_pair(paths: ProjectPaths) -> tuple[dict, int, float, int]:
    """The test pair on which the registered generator (stage 2) scored the median SSIM: a
    typical result, neither the best nor a failure. (manifest row, its rank, its SSIM, pairs)."""
    import pyarrow.parquet as pq

    from pg2_pipeline.config import load_params

    protocol = load_params(paths.params_file).evaluation.ssim_protocol
    scores = pq.read_table(paths.evaluation.per_pair, columns=["pair_id", f"stage2_ssim_{protocol}"]).to_pandas()
    scores = scores.sort_values([f"stage2_ssim_{protocol}", "pair_id"]).reset_index(drop=True)
    middle = (len(scores) - 1) // 2
    pair_id, ssim = int(scores.pair_id[middle]), float(scores[f"stage2_ssim_{protocol}"][middle])
    import pyarrow.compute as pc

    manifest = read_manifest(paths.manifest_table("test"))
    row = manifest.filter(pc.equal(manifest.column("pair_id"), pair_id)).to_pylist()[0]
    return row, middle + 1, ssim, len(scores)


def print_timings(root: Path, started: float, total: float) -> None:
    """Where the demo's time went: setup (``make demo`` passes it) and each stage's Dagster run
    (``dvc repro`` starts one per stage), then the rest (report and the pose transfer)."""
    import os
    import platform

    from dagster import DagsterInstance, RunsFilter

    from pg2_pipeline.runtime import cpu_model

    rows = []
    setup = os.environ.get("PG2_SETUP_SECONDS")
    if setup is not None:
        rows.append(("setup (environments)", float(setup)))
    records = DagsterInstance.get().get_run_records(filters=RunsFilter(tags={"pg2/started_by": "dvc"}))
    staged = 0.0
    for record in sorted(records, key=lambda r: r.start_time or 0):
        if not record.start_time or record.start_time < started or not record.end_time:
            continue
        names = sorted(k.path[-1] for k in (record.dagster_run.asset_selection or ()))
        rows.append((", ".join(names) or record.dagster_run.job_name, record.end_time - record.start_time))
        staged += record.end_time - record.start_time
    rows.append(("dvc, imports, report, pose transfer", max(total - staged, 0.0)))
    whole = sum(seconds for _, seconds in rows)
    print(f"\n==> where the time went ({os.cpu_count()}-core {cpu_model()}, {platform.machine()}):")
    for name, seconds in rows:
        print(f"    {name:<36} {seconds:7.0f} s")
    print(f"    {'total':<36} {whole:7.0f} s ({int(whole // 60)} min {int(whole % 60)} s)")


def generate_example(root: Path) -> None:
    from pg2_pipeline.inference import PoseTransfer
    from pg2_pipeline.tracking import tracking_uri

    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    registration = summaries.read(paths.evaluation.registration, summaries.Registration)
    uri = f"models:/{registration.name}@champion" if registration.champion else registration.model_uri
    row, rank, ssim, pairs = median_pair(paths)
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
    print(
        f"\n==> pose transfer with the registered model on the test pair of median SSIM ({ssim:.3f}, "
        f"{rank} of {pairs} by SSIM): {row['from_id']} in the pose of {row['to_id']} (the same as):"
    )
    print(f"    pg2 generate --model {uri} --image {rel(condition)} \\")
    print(f"        --pose {rel(demo.target_pose)} -o {rel(output)}")
    print(f"    condition | generated | target: {rel(demo.example)}")
