"""The torchrun worker of a training stage: ``python -m pg2_pipeline.train.worker STAGE --project DIR``
(:func:`pg2_pipeline.train.loop.run_stage` starts it through torchrun; so do the multi-node
commands in the README). It joins the process group, trains its share with the one loop, and
leaves."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from pg2_pipeline import locks
from pg2_pipeline.distributed import join_as_worker

WORKER_MODULE = "pg2_pipeline.train.worker"
LOCKED_EXIT = 75  # as `pg2 materialize`: another process writes the asset


def main(argv: list[str] | None = None) -> int:
    """The torchrun worker: join the group, train the stage, leave."""
    parser = argparse.ArgumentParser(prog=WORKER_MODULE, description="a torchrun worker of one training stage")
    parser.add_argument("stage", choices=("stage1", "stage2"))
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--dagster-run-id", default=None)
    args = parser.parse_args(argv)

    from pg2_pipeline.train.stages import STAGES, train_distributed

    me, paths, params = join_as_worker(WORKER_MODULE, args.project)
    # rank 0 writes the stage's files: under its asset's lock, which is its parent's when the
    # asset started torchrun, its own when a node was started by hand
    try:
        writing = locks.hold(paths, args.stage, dagster_run_id=args.dagster_run_id) if me.is_main else None
        with writing or contextlib.nullcontext():
            train_distributed(STAGES[args.stage], params, paths, me, dagster_run_id=args.dagster_run_id)
    except locks.AssetLockedError as exc:
        print(f"error: rank 0: {exc}", file=sys.stderr, flush=True)
        return LOCKED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
