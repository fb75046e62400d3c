"""PG² training: the per-step updates of stage 1 (G1) and stage 2 (G2 + D)."""

from pg2_pipeline.train.steps import Batch, StepResult, make_optimizer, stage1_step, stage2_step

__all__ = ["Batch", "StepResult", "make_optimizer", "stage1_step", "stage2_step"]
