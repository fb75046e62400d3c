"""The training stages by name, for callers that choose one at run time (tests, benchmarks,
scripts). The assets import their own stage class, so that each depends on its code only."""

from __future__ import annotations

from pg2_pipeline.distributed import Dist
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.runtime import resolve_device
from pg2_pipeline.summaries import TrainingSummary
from pg2_pipeline.train.loop import train
from pg2_pipeline.train.stage import TrainingStage
from pg2_pipeline.train.stage1 import Stage1
from pg2_pipeline.train.stage2 import Stage2

STAGES: dict[str, type[TrainingStage]] = {cls.name: cls for cls in (Stage1, Stage2)}


def train_stage(name: str, params, paths: ProjectPaths, **kwargs) -> TrainingSummary:
    """:func:`~pg2_pipeline.train.loop.train` of the stage called ``name`` (one process)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage '{name}' (expected one of {', '.join(STAGES)})")
    return train(STAGES[name], params, paths, **kwargs)


def train_distributed(
    stage_cls: type[TrainingStage], params, paths: ProjectPaths, me: Dist, **kwargs
) -> TrainingSummary | None:
    """A torchrun worker's run: join the process group, train, leave."""
    cfg = params.section(stage_cls.name)
    me.init(cfg.backend, me.device(resolve_device(cfg.device)))
    try:
        return train(stage_cls, params, paths, dist=me, **kwargs)
    finally:
        me.close()
