"""What every training stage is to the loop (:mod:`pg2_pipeline.train.loop`), and the pieces the
two stages share.

A stage is built from params (:meth:`TrainingStage.build`), updates its networks one batch at a
time (:meth:`~TrainingStage.step`), shows what it makes (:meth:`~TrainingStage.samples`) and
writes its final networks (:meth:`~TrainingStage.export`). The loop owns everything else:
seeding, the loader, resume, checkpoints, progress, the MLflow run and the summary.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.models import io
from pg2_pipeline.models.sync_bn import synchronize_batchnorm
from pg2_pipeline.paths import ProjectPaths, StagePaths
from pg2_pipeline.runtime import Runtime, autocast

Tensor = torch.Tensor


class StepResult(dict):
    """The step's losses and monitors as Python floats (log it as it is), plus ``.images``:
    detached float32 tensors (G1, DiffMap, G2) when the step was asked for them, else None."""

    images: dict[str, Tensor] | None = None


@dataclass(frozen=True)
class StageContext:
    """What a stage is built from: its params section, the whole params, where the project's
    files are, the image size and the runtime."""

    cfg: object  # Stage1Params / Stage2Params
    params: object  # Params
    paths: ProjectPaths
    image_size: tuple[int, int]
    runtime: Runtime


class TrainingStage(abc.ABC):
    """Base of :class:`~pg2_pipeline.train.stage1.Stage1` and
    :class:`~pg2_pipeline.train.stage2.Stage2`."""

    name: ClassVar[str]
    trained: ClassVar[tuple[str, ...]]  # the networks it trains (checkpointed, exported)

    def __init__(
        self, networks: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], amp: torch.dtype | None
    ):
        self.networks, self.optimizers, self.amp = networks, optimizers, amp
        # What the updates call: ``_plain`` the networks (or their torch.compile wrappers);
        # ``_run`` the same, or their DDP wrappers once distributed (gradients averaged).
        self._plain = dict(networks)
        self._run = dict(networks)
        self._base_lr = {name: [g["lr"] for g in opt.param_groups] for name, opt in optimizers.items()}
        self.averages: dict[str, WeightAverage] = {}  # see :meth:`average_weights`

    # --- what the loop calls -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def build(cls, ctx: StageContext) -> TrainingStage:
        """The stage's networks and optimizers, initialised from ``ctx.params``."""

    def inputs_hash(self) -> str:
        """Hash of the inputs beyond params, manifests and code (stage 2: G1's weights)."""
        return ""

    @abc.abstractmethod
    def step(self, batch: Batch) -> StepResult:
        """One update of the stage's networks on ``batch``."""

    @abc.abstractmethod
    def samples(self, batch: Batch) -> dict[str, Tensor]:
        """Named float images (B, 3, H, W) for the sample grid's columns."""

    @abc.abstractmethod
    def output(self, batch: Batch) -> Tensor:
        """The stage's generated image (B, 3, H, W) in [-1, 1]: what validation scores."""

    @property
    def starts_at_reference(self) -> bool:
        """Whether the untrained stage's :meth:`output` is :meth:`reference_output` exactly (its
        step-0 validation is then the reference's, not scored twice)."""
        return False

    def reference_output(self, batch: Batch) -> Tensor | None:
        """What the stage starts from, scored once for the rules that compare with it (params
        ``select: best_lpips_keep_ssim`` / ``best_fid_keep_ssim``; stage 2: G1's image); None
        when there is nothing to compare with."""
        return None

    @abc.abstractmethod
    def export(self, files: StagePaths) -> list[Path]:
        """Writes the final networks into the stage folder; returns the files written."""

    def average_weights(self, names: Iterable[str], decay: float) -> None:
        """Keeps an exponential moving average of the weights of the networks ``names``
        (params ``ema_decay``): what :meth:`evaluated` returns, so what validation scores, the
        sample grids show and :meth:`export` writes. ``decay`` 0 keeps none."""
        if decay > 0:
            self.averages = {n: WeightAverage(self.networks[n], decay) for n in names}

    def update_averages(self, step: int) -> None:
        """After update ``step`` (1-based): the averages take their share of the new weights."""
        for average in self.averages.values():
            average.update(step)

    def evaluated(self, name: str) -> nn.Module:
        """The network ``name`` as it is scored and exported: its weight average when the stage
        keeps one, else the trained network itself."""
        average = self.averages.get(name)
        return average.module if average is not None else self.networks[name]

    def scale_lr(self, factor: float) -> None:
        """Every optimizer at ``factor`` × its initial learning rate (the schedule's value)."""
        for name, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self._base_lr[name], strict=True):
                group["lr"] = base * factor

    def compile(self) -> None:
        """Steps run ``torch.compile``d networks; checkpoints keep the plain modules."""
        self._plain = {name: torch.compile(m) for name, m in self.networks.items()}
        self._run = {name: torch.compile(m) for name, m in self._run.items()}

    def distribute(self, device: torch.device) -> None:
        """Trains across the process group: BatchNorm synchronised across ranks, the trained
        networks wrapped in DistributedDataParallel (call before :meth:`compile`)."""
        from torch.nn.parallel import DistributedDataParallel

        for name in self.trained:
            synchronize_batchnorm(self.networks[name], device)
            ids = [device.index] if device.type == "cuda" else None
            self._run[name] = DistributedDataParallel(self.networks[name], device_ids=ids)

    def state(self) -> tuple[dict, dict]:
        """(network state dicts, optimizer state dicts) for a checkpoint."""
        models = {n: io.unwrap(self.networks[n]).state_dict() for n in self.trained}
        models |= {f"{n}{AVERAGE_SUFFIX}": a.module.state_dict() for n, a in self.averages.items()}
        return models, {n: o.state_dict() for n, o in self.optimizers.items()}

    def load_state(self, models: dict, optimizers: dict | None = None) -> None:
        """Network (and, when given, optimizer) state from a checkpoint."""
        for name in self.trained:
            io.unwrap(self.networks[name]).load_state_dict(models[name])
        for name, average in self.averages.items():
            key = f"{name}{AVERAGE_SUFFIX}"
            if key not in models:
                raise KeyError(f"the checkpoint has no {key!r}: it was not written with ema_decay > 0")
            average.module.load_state_dict(models[key])
        for name, opt in self.optimizers.items() if optimizers is not None else ():
            opt.load_state_dict(optimizers[name])

    def autocast(self, batch: Batch) -> contextlib.AbstractContextManager:
        """bf16 autocast on the batch's device when the stage runs in bf16."""
        return autocast(batch.target.device.type, self.amp)


AVERAGE_SUFFIX = "_ema"  # checkpoint key of a network's weight average: "g1_ema"


class WeightAverage:
    """An exponential moving average of a network's weights, in a frozen copy of it.

    After update ``t`` each averaged tensor becomes ``d·avg + (1 − d)·w`` with
    ``d = min(decay, (1 + t) / (10 + t))``: the warm-up forgets the random initialisation within
    the first few hundred updates instead of dragging it along for ``1 / (1 − decay)`` of them.
    Buffers (BatchNorm statistics) are copied, not averaged.
    """

    def __init__(self, network: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.network = io.unwrap(network)
        self.module = copy.deepcopy(self.network).requires_grad_(False).eval()

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for mine, theirs in zip(self.module.parameters(), self.network.parameters(), strict=True):
            mine.lerp_(theirs.detach(), 1.0 - d)
        for mine, theirs in zip(self.module.buffers(), self.network.buffers(), strict=True):
            mine.copy_(theirs)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning-rate multiplier of update ``step`` (0-based) of ``steps``."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / steps))
    raise ValueError(f"unknown lr_schedule {schedule!r} (expected constant or cosine)")


def make_optimizer(
    params: Iterable[nn.Parameter],
    lr: float = 2e-5,
    betas: tuple[float, float] = (0.5, 0.999),
    fused: bool = True,
) -> torch.optim.Adam:
    """Adam with the reference's settings for G1, G2 and D (lr 2e-5, β1 0.5, β2 0.999).

    ``fused``: one kernel per tensor instead of ~6 element-wise passes; same arithmetic. On the
    2-core CPU it makes G1's update (71 M parameters at C=128) 2–5× faster (≈0.2–0.45 s
    instead of ≈1–2 s per step); on GPUs it is the fastest Adam too.
    """
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)


def masked_l1(generated: Tensor, batch: Batch) -> Tensor:
    """mean(|G − I_B| · M_B): the on-body part of the pose-mask L1, a monitor only."""
    with torch.no_grad():
        return ((generated.float() - batch.target.float()).abs() * batch.target_mask.float()).mean()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside (gradients still flow to its input)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def floats(**values: Tensor) -> StepResult:
    """Detached scalars to Python floats with one device sync (one ``tolist``)."""
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    return StepResult(zip(values, stacked.tolist(), strict=True))
