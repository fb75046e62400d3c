"""Training on several processes: PyTorch's ``torchrun`` with DistributedDataParallel.

With ``nproc_per_node × nnodes > 1`` in a stage's params, the asset (the same in Dagster, DVC and
the CLI) calls :func:`launch`, which runs ``torchrun`` on this module; each worker process joins
the process group and runs the one training loop (:func:`pg2_pipeline.train.loop.train`) with its
:class:`Dist`. One process keeps the plain path (no torchrun, no process group).

What the loop does with a :class:`Dist`:

* **Data.** The global batch stays params ``batch_size``; rank r takes rows ``r·b .. (r+1)·b`` of
  the seeded global batch (b = batch_size / world size, an error if it does not divide), so every
  pair is seen once per epoch across ranks, in the same order as one process, and a checkpoint
  written on N ranks resumes on M.
* **Gradients** are averaged by DDP; D's BatchNorm is synchronised across ranks
  (:mod:`pg2_pipeline.models.sync_bn`), so its statistics are the global batch's, as in one
  process. Logged losses are averaged across ranks.
* **Rank 0 alone** writes checkpoints, sample grids, validation, history, the summary and the
  MLflow run (one run, not one per rank); the other ranks only train.
* **Failures.** torchrun stops every rank when one dies; :func:`launch` raises
  :class:`DistributedTrainingError` naming the rank and its exit code. A rerun resumes from the
  last checkpoint like a single-process run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

WORKER_MODULE = "pg2_pipeline.train.worker"  # what torchrun runs in each process


class DistributedTrainingError(RuntimeError):
    """torchrun failed: a rank died or the rendezvous did not complete."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the process group."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Dist | None:
        """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), None outside torchrun."""
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return None
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))

    def device(self, device: torch.device) -> torch.device:
        """The rank's device: its own GPU (LOCAL_RANK) under CUDA, else the CPU."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def init(self, backend: str, device: torch.device) -> None:
        """Joins the process group (``auto``: nccl on CUDA, gloo on CPU)."""
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)

    def local_batch(self, batch_size: int, what: str) -> int:
        if batch_size % self.world:
            raise ValueError(f"params {what} ({batch_size}) must divide by the world size ({self.world} processes)")
        return batch_size // self.world

    def barrier(self) -> None:
        dist.barrier()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (every rank gets the result)."""
        t = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world).tolist(), strict=True))

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def world_size(cfg) -> int:
    return cfg.nproc_per_node * cfg.nnodes


def torchrun_command(stage: str, cfg, root: Path, dagster_run_id: str | None = None) -> list[str]:
    """The torchrun command line of a stage (the same on every node of a multi-node run)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={cfg.nproc_per_node}",
        f"--nnodes={cfg.nnodes}",
    ]
    if cfg.nnodes == 1 and not cfg.rdzv_endpoint:
        cmd.append("--standalone")
    else:
        if not cfg.rdzv_endpoint:
            raise ValueError(f"params {stage}.nnodes is {cfg.nnodes}: set {stage}.rdzv_endpoint (HOST:PORT of node 0)")
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={cfg.rdzv_endpoint}", f"--rdzv-id=pg2-{stage}"]
    cmd += ["-m", WORKER_MODULE, stage, "--project", str(root)]
    if dagster_run_id:
        cmd += ["--dagster-run-id", dagster_run_id]
    return cmd


_FAILURE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\).*?exitcode\s*:\s*(-?\d+)", re.S)


def launch(stage: str, params, paths, *, dagster_run_id: str | None = None):
    """Runs stage ``stage`` under torchrun (its output streams through); returns the summary rank
    0 wrote, or raises :class:`DistributedTrainingError` naming the rank that failed."""
    from pg2_pipeline import summaries

    cfg = params.section(stage)
    cmd = torchrun_command(stage, cfg, paths.root, dagster_run_id)
    print(
        f"==> {stage}: {world_size(cfg)} processes ({cfg.nnodes} node(s) x {cfg.nproc_per_node}): {' '.join(cmd)}",
        flush=True,
    )
    env = {
        **os.environ,
        "PG2_PROJECT_DIR": str(paths.root),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(_threads(cfg))),
    }
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:  # stream: the workers' progress and logs reach the caller's log
        print(line, end="", flush=True)
        tail = (tail + [line])[-200:]
    if proc.wait() != 0:
        text = "".join(tail)
        # torchrun's report lists every stopped rank; the "Root Cause" is the one that failed first
        failed = _FAILURE.search(text.split("Root Cause", 1)[-1])
        who = (
            f"rank {failed.group(1)} (local rank {failed.group(2)}) exited with code {failed.group(3)}"
            if failed
            else f"torchrun exited with code {proc.returncode}"
        )
        raise DistributedTrainingError(
            f"{stage}: {who}; every rank was stopped. "
            f"Rerun to resume from the last checkpoint in {paths.stage(stage).checkpoints}"
        )
    return summaries.read(paths.stage(stage).summary, summaries.TrainingSummary, stage)


def _threads(cfg) -> int:
    """Compute threads per worker: the machine's cores shared by the node's processes."""
    return max(1, (os.cpu_count() or 1) // cfg.nproc_per_node)
