"""The torchrun worker of a training stage: ``python -m pg2_pipeline.train.worker STAGE --project DIR``
(:func:`pg2_pipeline.train.loop.run_stage` starts it through torchrun; so do the multi-node
commands in the README). It joins the process group, trains its share with the one loop, and
leaves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pg2_pipeline.distributed import Dist

WORKER_MODULE = "pg2_pipeline.train.worker"


def main(argv: list[str] | None = None) -> int:
    """The torchrun worker: join the group, train the stage, leave."""
    parser = argparse.ArgumentParser(prog=WORKER_MODULE, description="a torchrun worker of one training stage")
    parser.add_argument("stage", choices=("stage1", "stage2"))
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--dagster-run-id", default=None)
    args = parser.parse_args(argv)

    from pg2_pipeline.config import load_params
    from pg2_pipeline.env import apply_offline_defaults
    from pg2_pipeline.paths import ProjectPaths
    from pg2_pipeline.train.stages import STAGES, train_distributed

    apply_offline_defaults()
    me = Dist.from_env()
    if me is None:
        raise SystemExit(f"{WORKER_MODULE} runs under torchrun (RANK and WORLD_SIZE are not set)")
    paths = ProjectPaths(args.project.resolve())
    params = load_params(paths.params_file)
    train_distributed(STAGES[args.stage], params, paths, me, dagster_run_id=args.dagster_run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
