"""The torchrun worker of a training stage: ``python -m pg2_pipeline.train.worker STAGE --project DIR``
(:func:`pg2_pipeline.train.loop.run_stage` starts it through torchrun; so do the multi-node
commands in the README). It joins the process group, trains its share with the one loop, and
leaves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pg2_pipeline.distributed import join_as_worker

WORKER_MODULE = "pg2_pipeline.train.worker"


def main(argv: list[str] | None = None) -> int:
    """The torchrun worker: join the group, train the stage, leave."""
    parser = argparse.ArgumentParser(prog=WORKER_MODULE, description="a torchrun worker of one training stage")
    parser.add_argument("stage", choices=("stage1", "stage2"))
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--dagster-run-id", default=None)
    args = parser.parse_args(argv)

    from pg2_pipeline.train.stages import STAGES, train_distributed

    me, paths, params = join_as_worker(WORKER_MODULE, args.project)
    train_distributed(STAGES[args.stage], params, paths, me, dagster_run_id=args.dagster_run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
