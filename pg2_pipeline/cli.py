"""The ``pg2`` command.

pg2 materialize ASSET [ASSET ...] [--wait]
                                    materialize assets in the project's Dagster instance
                                    (what every DVC stage runs); one writer per asset
pg2 demo                            the README's main job: `dvc repro` + a report
pg2 report                          what the pipeline has made so far, and where
pg2 params                          print the resolved parameters (after overrides)
pg2 generate --model URI --image person.jpg (--pose pose.json | --pose-from other.jpg) -o out.png
                                    pose transfer with a registered generator
pg2 score GENERATED -o OUT [--layout auto|files|strip|csv] [--protocol NAME ...] [--skip fid,...]
                                    score any method's outputs under every named protocol
pg2 serve [--model URI] [--host 127.0.0.1] [--port 7860]
                                    the pose-transfer page and its JSON API (POST /api/generate)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pg2_pipeline.env import ensure_dagster_home, find_project_root
from pg2_pipeline.paths import ASSET_NAMES

LOCKED_EXIT = 75  # EX_TEMPFAIL: another process is writing the asset; try later, or --wait


def _materialize(names: list[str], started_by: str, wait: bool) -> int:
    """Takes the write lock of every named asset (in pipeline order, so that two waiting
    commands cannot deadlock) before the Dagster run starts: a second writer is refused here,
    in one line, before a Dagster run is even recorded."""
    from pg2_pipeline import locks
    from pg2_pipeline.paths import ProjectPaths

    paths = ProjectPaths.discover()
    with contextlib.ExitStack() as held:
        try:
            took_over = [
                held.enter_context(locks.hold(paths, name, wait=wait)).took_over
                for name in sorted(set(names), key=ASSET_NAMES.index)
            ]
        except locks.AssetLockedError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return LOCKED_EXIT
        from pg2_pipeline.orchestration.run import materialize_assets

        dead = [h.dagster_run_id for h in took_over if h is not None and h.dagster_run_id]
        return 0 if materialize_assets(names, started_by=started_by, dead_runs=dead) else 1


def _tracking_uri(explicit: str | None) -> str | None:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the project's store when run in one."""
    if explicit or os.environ.get("MLFLOW_TRACKING_URI"):
        return explicit or os.environ["MLFLOW_TRACKING_URI"]
    try:
        root = find_project_root()
    except FileNotFoundError:
        return None
    from pg2_pipeline.config import load_params
    from pg2_pipeline.tracking import tracking_uri

    return tracking_uri(load_params(root / "params.yaml"), root)


def _generate(args) -> int:
    from pg2_pipeline.inference import InferenceError, PoseTransfer, check_output_path

    try:
        check_output_path(args.output)  # before the model is loaded: a wrong name fails at once
        transfer = PoseTransfer(args.model, tracking_uri=_tracking_uri(args.tracking_uri))
        image = transfer.generate(args.image, pose=args.pose, pose_from=args.pose_from)
        out = transfer.save(image, args.output)
        transfer.close()
    except InferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({image.shape[0]}x{image.shape[1]}) with {args.model}")
    print(f"model: {transfer.card.headline()}")
    if caveat := transfer.card.caveat():
        print(f"note: {caveat}")
    return 0


def _serve(args) -> int:
    from pg2_pipeline.model_card import project_model_uri
    from pg2_pipeline.serve.app import serve

    try:
        root = find_project_root()
    except FileNotFoundError:
        root = None
    model = args.model or (project_model_uri(root) if root else "models:/pg2-generator@champion")
    tracking = _tracking_uri(args.tracking_uri)
    return serve(model, args.host, args.port, tracking, root, required=args.model is not None, threads=args.threads)


def _demo_example(root: Path) -> None:
    """The last step of the demo: one `pg2 generate` call on a twin test pair."""
    from pg2_pipeline.demo import generate_example

    generate_example(root)


def _hold_every_asset(root: Path, held: contextlib.ExitStack) -> int | None:
    """Every asset's write lock, for the whole `dvc repro`: DVC deletes a stage's outputs
    before it starts the stage's `pg2 materialize`, too late for that command's own lock to
    protect another writer's files. The stages write under these locks ($PG2_HELD_LOCKS).
    Returns the exit code when another process writes an asset."""
    from pg2_pipeline import locks
    from pg2_pipeline.paths import ProjectPaths

    paths = ProjectPaths(root)
    try:
        took_over = [held.enter_context(locks.hold(paths, name)).took_over for name in ASSET_NAMES]
    except locks.AssetLockedError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return LOCKED_EXIT
    dead = [h.dagster_run_id for h in took_over if h is not None and h.dagster_run_id]
    if dead:
        from dagster import DagsterInstance

        from pg2_pipeline.orchestration.run import end_dead_run

        for run_id in dead:
            end_dead_run(DagsterInstance.get(), run_id)
    return None


def _demo() -> int:
    root = find_project_root()
    dvc = Path(sys.executable).with_name("dvc")
    if not dvc.exists():
        print(f"error: {dvc} not found; run `make setup` (scripts/bootstrap.sh) first", file=sys.stderr)
        return 2
    start, started = time.perf_counter(), time.time()
    print("==> dvc repro: runs every stage whose code, params or inputs changed", flush=True)
    with contextlib.ExitStack() as held:
        if (refused := _hold_every_asset(root, held)) is not None:
            return refused
        proc = subprocess.run([str(dvc), "repro"], cwd=root)
    if proc.returncode != 0:
        print(f"error: dvc repro failed (exit {proc.returncode}); see the stage output above", file=sys.stderr)
        return proc.returncode
    from pg2_pipeline.report import print_report

    print_report(root)
    _demo_example(root)
    from pg2_pipeline.demo import print_timings

    print_timings(root, started, time.perf_counter() - start)
    return 0


def _report() -> int:
    from pg2_pipeline.report import print_report

    print_report(find_project_root())
    return 0


def _params() -> int:
    from pg2_pipeline.config import load_params

    params = load_params(find_project_root() / "params.yaml")
    print(json.dumps(params.to_dict(), indent=2))
    return 0


def _score_parser(sub) -> None:
    c = sub.add_parser("score", help="score any method's outputs under every named protocol, side by side")
    c.add_argument("generated", help="folder of generated images (or a CSV with from,to,generated)")
    c.add_argument("-o", "--output", required=True, help="folder for metrics.json, per_pair.parquet, report.md")
    c.add_argument("--layout", default="auto", choices=("auto", "files", "strip", "csv"))
    c.add_argument("--tiles", type=int, help="strip layout: tiles per image (PATN 5, Deformable GAN 3)")
    c.add_argument("--generated-tile", type=int, help="strip layout: 0-based index of the generated tile")
    c.add_argument("--dataset", choices=("market", "deepfashion"), help="default: the project's base.dataset")
    c.add_argument("--images", help="dataset root with the target images (default: the project's image_index.root)")
    c.add_argument("--pairs", help="from,to CSV of the pairs to expect (default: the standard test pairs)")
    c.add_argument("--protocol", action="append", help="pg2, patn, gfla, cfld (repeatable; default: all)")
    c.add_argument("--skip", help="comma-separated metrics to leave out: fid, lpips, pckh, mask_ssim")
    c.add_argument("--real", help="folder of real images for FID (default: the project's training images)")
    c.add_argument("--fid-real-images", type=int, help="seeded subset of the real set (default: the evaluation's)")
    c.add_argument("--fid-weights", help="TorchScript torchvision ImageNet Inception-v3 (the gfla / cfld FID)")
    c.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    c.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run (inside a project)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pg2", description="PG² pose-guided person generation pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="materialize assets in the project's Dagster instance")
    m.add_argument("assets", nargs="+", choices=ASSET_NAMES, metavar="ASSET", help=f"one of {', '.join(ASSET_NAMES)}")
    m.add_argument("--started-by", default="cli", help="tag recorded on the Dagster run (dvc stages pass 'dvc')")
    m.add_argument("--wait", action="store_true", help="wait for another run writing the same asset instead of failing")
    sub.add_parser("demo", help="run the whole pipeline with dvc repro and print a report")
    sub.add_parser("report", help="print what the pipeline has made so far")
    sub.add_parser("params", help="print the resolved parameters")
    g = sub.add_parser("generate", help="pose transfer with a registered generator")
    g.add_argument(
        "--model", required=True, help="models:/<name>@<alias>, models:/<name>/<version> or runs:/<id>/generator"
    )
    g.add_argument("--image", required=True, help="photo of the person (any size: cropped around the person)")
    target = g.add_mutually_exclusive_group(required=True)
    target.add_argument("--pose", help='target pose JSON: {"size": [H, W], "keypoints": [[y, x] x 18]}')
    target.add_argument("--pose-from", help="photo whose person's pose (BlazePose) is the target")
    g.add_argument("-o", "--output", required=True, help="output image (.png, .jpg or .jpeg)")
    g.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project's)")
    s = sub.add_parser("serve", help="the pose-transfer page and its JSON API")
    s.add_argument("--model", help="registered generator (default: the project's @champion, else its last version)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--threads", type=int, default=1, help="torch compute threads (default 1: steady on a busy machine)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project's)")
    _score_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "score":
        from pg2_pipeline.score.project import score_command

        return score_command(args)
    if args.command == "generate":
        return _generate(args)
    if args.command == "serve":
        return _serve(args)
    os.chdir(find_project_root())
    ensure_dagster_home()
    if args.command == "materialize":
        return _materialize(args.assets, args.started_by, args.wait)
    if args.command == "demo":
        return _demo()
    if args.command == "report":
        return _report()
    return _params()


if __name__ == "__main__":
    sys.exit(main())
