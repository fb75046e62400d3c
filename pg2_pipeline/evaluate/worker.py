"""The torchrun worker of a sharded evaluation: ``python -m pg2_pipeline.evaluate.worker --project DIR``
(:func:`pg2_pipeline.evaluate.stage.run_evaluation` starts it). Scores its share of the test
batches; rank 0 merges them and writes the evaluation."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from pg2_pipeline import locks
from pg2_pipeline.distributed import join_as_worker

WORKER_MODULE = "pg2_pipeline.evaluate.worker"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=WORKER_MODULE, description="a torchrun worker of the evaluation")
    parser.add_argument("--project", type=Path, required=True)
    args = parser.parse_args(argv)

    from pg2_pipeline.evaluate.stage import build_evaluation
    from pg2_pipeline.runtime import resolve_device

    me, paths, params = join_as_worker(WORKER_MODULE, args.project)
    # rank 0 writes the evaluation: under its lock (its parent's when the asset started torchrun)
    try:
        writing = locks.hold(paths, "evaluation") if me.is_main else None
        with writing or contextlib.nullcontext():
            me.init(params.evaluation.backend, me.device(resolve_device(params.evaluation.device)))
            try:
                build_evaluation(params, paths, dist=me, progress=True)
            finally:
                me.close()
    except locks.AssetLockedError as exc:
        print(f"error: rank 0: {exc}", file=sys.stderr, flush=True)
        return 75  # as `pg2 materialize`: another process writes the asset
    return 0


if __name__ == "__main__":
    sys.exit(main())
