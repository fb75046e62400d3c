"""Several processes: PyTorch's ``torchrun``, for training (DistributedDataParallel) and for a
sharded evaluation.

With more than one process in a stage's params (``nproc_per_node × nnodes``), the asset — the
same in Dagster, DVC and the CLI — calls :func:`launch`, which runs ``torchrun`` on the stage's
worker module (:mod:`pg2_pipeline.train.worker`, :mod:`pg2_pipeline.evaluate.worker`); each
worker joins the process group with its :class:`Dist`. One process keeps the plain path (no
torchrun, no process group).

What the training loop does with a :class:`Dist`:

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

The evaluation shards its test batches the same way (batch k on rank k mod N, the batches of one
process) and gathers them on rank 0, which merges them in order: the numbers are one process's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


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

    def from_main(self, obj):
        """Rank 0's ``obj`` on every rank (what rank 0 decided, e.g. the precision it measured)."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (every rank gets the result)."""
        t = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world).tolist(), strict=True))

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def join_as_worker(module: str, project: Path):
    """What every torchrun worker does first: offline defaults, its rank from the environment
    (an error outside torchrun), and the project's paths and params."""
    from pg2_pipeline.config import load_params
    from pg2_pipeline.env import apply_offline_defaults
    from pg2_pipeline.paths import ProjectPaths

    apply_offline_defaults()
    me = Dist.from_env()
    if me is None:
        raise SystemExit(f"{module} runs under torchrun (RANK and WORLD_SIZE are not set)")
    paths = ProjectPaths(project.resolve())
    return me, paths, load_params(paths.params_file)


def world_size(cfg) -> int:
    """Processes a stage's params ask for (``nnodes`` defaults to 1 where a section has none)."""
    return cfg.nproc_per_node * getattr(cfg, "nnodes", 1)


def torchrun_command(stage: str, cfg, worker: str, args: Sequence[str]) -> list[str]:
    """The torchrun command line of a stage's worker (the same on every node of a multi-node run)."""
    nnodes, endpoint = getattr(cfg, "nnodes", 1), getattr(cfg, "rdzv_endpoint", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={cfg.nproc_per_node}",
        f"--nnodes={nnodes}",
    ]
    if nnodes == 1 and not endpoint:
        cmd.append("--standalone")
    else:
        if not endpoint:
            raise ValueError(f"params {stage}.nnodes is {nnodes}: set {stage}.rdzv_endpoint (HOST:PORT of node 0)")
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id=pg2-{stage}"]
    return [*cmd, "-m", worker, *args]


_FAILURE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\).*?exitcode\s*:\s*(-?\d+)", re.S)


def launch(stage: str, cfg, cmd: list[str], root: Path, rerun_hint: str) -> None:
    """Runs ``cmd`` (a :func:`torchrun_command`) with its output streaming through; raises
    :class:`DistributedTrainingError` naming the rank that failed first."""
    print(f"==> {stage}: {world_size(cfg)} processes: {' '.join(cmd)}", flush=True)
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.nproc_per_node)))
    env = {**os.environ, "PG2_PROJECT_DIR": str(root), "OMP_NUM_THREADS": threads}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:  # stream: the workers' progress and logs reach the caller's log
        print(line, end="", flush=True)
        tail = (tail + [line])[-200:]
    if proc.wait() != 0:
        # torchrun's report lists every stopped rank; the "Root Cause" is the one that failed first
        failed = _FAILURE.search("".join(tail).split("Root Cause", 1)[-1])
        if failed:
            who = f"rank {failed.group(1)} (local rank {failed.group(2)}) exited with code {failed.group(3)}"
        else:
            who = f"torchrun exited with code {proc.returncode}"
        raise DistributedTrainingError(f"{stage}: {who}; every rank was stopped. {rerun_hint}")
