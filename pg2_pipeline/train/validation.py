"""Validation during training, on the pairs asset's ``val`` split: training identities held out of
training, never the test pairs.

Every ``validate_every`` steps the loop scores the stage's output on the same fixed pairs:

* to the **target**: SSIM (``pg2`` protocol), mask-SSIM (target pose mask), L1, LPIPS;
* to the **condition** image: SSIM and L1 — the copy detector. A generator that pastes I_A
  instead of moving the person scores high here and low above (PG²'s faithful stage 2 on short
  runs: SSIM 0.51 to the condition vs 0.20 to the target);
* with params ``validate_fid`` (stage 2): **FID** of the validation outputs against the
  evaluation's real set (params ``evaluation.fid_real_images`` training images, the same
  protocol; their statistics come from, or go to, ``.pg2_cache/features``, where the evaluation
  reads them). Few images inflate FID: compare it only between steps of one run and with G1's.

The same numbers choose the exported weights when params ``select`` asks for it
(:data:`SELECTION`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pg2_pipeline.evaluate import metrics as M
from pg2_pipeline.evaluate.lpips import LPIPS
from pg2_pipeline.imaging import to_uint8
from pg2_pipeline.inputs.batch import Batch
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.models import io
from pg2_pipeline.paths import ProjectPaths, StagePaths

Tensor = torch.Tensor
METRICS = ("ssim", "mask_ssim", "l1", "lpips", "ssim_to_condition", "l1_to_condition")
# params select -> (validation metric, True when higher is better)
SELECTION = {
    "best_ssim": ("ssim", True),
    "best_mask_ssim": ("mask_ssim", True),
    "best_lpips": ("lpips", False),
    # stage 2: the lowest LPIPS among the steps that keep G1's SSIM (within select_ssim_tolerance);
    # with a zero-initialised G2, step 0 *is* G1 and stays a candidate: never worse than G1
    "best_lpips_keep_ssim": ("lpips", False),
    # stage 2 with validate_fid: the lowest FID among the steps that keep G1's SSIM (as above) and
    # do not raise its LPIPS; step 0 (G1 itself) stays a candidate, so again never worse than G1
    "best_fid_keep_ssim": ("fid", False),
}
KEEP_SSIM = "best_lpips_keep_ssim"
KEEP_SSIM_FID = "best_fid_keep_ssim"
KEEP_RULES = (KEEP_SSIM, KEEP_SSIM_FID)  # rules that compare each step with the stage's reference (G1)
PROTOCOL = "pg2"


@dataclass(frozen=True)
class _Pairs:
    batch: Batch  # network inputs
    target: Tensor  # uint8 (B, 3, H, W)
    condition: Tensor  # uint8
    mask: Tensor  # bool (B, 1, H, W): the target pose mask


class ValidationFID:
    """The Inception network and the evaluation's real-set statistics, for FID on validation."""

    def __init__(self, params, paths: ProjectPaths, device: torch.device):
        from pg2_pipeline.evaluate.feature_cache import inception_store, real_stats
        from pg2_pipeline.evaluate.fid import InceptionFeatures
        from pg2_pipeline.evaluate.real_set import training_images

        self.features = InceptionFeatures(device=device)
        cache_dir = paths.local_cache.features
        store = inception_store(self.features, cache_dir)
        cfg = params.evaluation
        self.real, _ = real_stats(
            lambda: training_images(paths, cfg.fid_real_images, params.base.seed),
            self.features,
            cache_dir,
            store=store,
        )
        store.save()

    def __call__(self, images: list[Tensor]) -> float:
        """FID of uint8 (B, 3, H, W) ``images`` (the validation outputs, in chunks)."""
        from pg2_pipeline.evaluate.fid import GeneratedFeatures

        generated = GeneratedFeatures()
        for chunk in images:
            generated.add(self.features(chunk))
        return generated.fid_to(self.real)


class Validator:
    """Scores a generator on the fixed validation pairs (all of them, in manifest order)."""

    def __init__(
        self, paths: ProjectPaths, device: torch.device, batch_size: int = 32, fid: ValidationFID | None = None
    ):
        loader = PairLoader.from_manifest(
            paths, "val", min(batch_size, self.pairs_of(paths)), shuffle=False, device=device
        )
        self.pairs = len(loader.pairs)
        self.chunks = []
        for step in range(loader.steps_per_epoch):
            batch = loader.batch(step)
            self.chunks.append(
                _Pairs(batch, to_uint8(batch.target), to_uint8(batch.condition), batch.target_mask > 0.5)
            )
        self.lpips = LPIPS.pretrained(device=device)
        self.fid = fid

    @staticmethod
    def pairs_of(paths: ProjectPaths) -> int:
        """Validation pairs in the manifests (0: no validation split)."""
        from pg2_pipeline.inputs.manifests import manifest_info

        path = paths.manifest_table("val")
        return int(manifest_info(path).get("pairs", 0)) if path.is_file() else 0

    @torch.inference_mode()
    def __call__(self, generate: Callable[[Batch], Tensor]) -> dict[str, float]:
        """Mean of each metric over the validation pairs of ``generate``'s [-1, 1] images."""
        values: dict[str, list[Tensor]] = {k: [] for k in METRICS}
        outputs = []
        for c in self.chunks:
            out = to_uint8(generate(c.batch))
            outputs.append(out)
            values["ssim"].append(M.ssim(out, c.target, PROTOCOL))
            values["mask_ssim"].append(M.ssim(out, c.target, PROTOCOL, mask=c.mask))
            values["l1"].append(M.l1(out, c.target))
            values["lpips"].append(self.lpips.score(out, c.target))
            values["ssim_to_condition"].append(M.ssim(out, c.condition, PROTOCOL))
            values["l1_to_condition"].append(M.l1(out, c.condition))
        means = {k: round(float(torch.cat(v).double().mean()), 6) for k, v in values.items()}
        if self.fid is not None:
            means["fid"] = round(self.fid(outputs), 4)
        return means


def better(select: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of the ``select`` rule's metric beats the best so far."""
    _, higher = SELECTION[select]
    return best is None or (value > best if higher else value < best)


class Selection:
    """The validation history of a run and, for ``select != "last"``, the networks at its best
    step (``checkpoints/best.pt``, so a resumed run keeps its best)."""

    def __init__(self, rule: str, files: StagePaths, fingerprint: str, device: torch.device, tolerance: float = 0.0):
        self.rule, self.files, self.fingerprint, self.device = rule, files, fingerprint, device
        self.tolerance = tolerance
        self.history: list[dict] = []
        self.best: tuple[int, float] | None = None  # (step, value)
        self.reference: dict[str, float] = {}  # validation of the stage's reference (stage 2: G1 alone)

    def restore(self, history: list[dict], resumed_step: int) -> None:
        """After a resume: the checkpoint's history, and the best file when it belongs to this
        run and to a step the checkpoint had reached (the loop has set any other aside, see
        :func:`pg2_pipeline.models.io.foreign_best`; a later best is recomputed)."""
        self.history = list(history)
        path = self.files.best_checkpoint
        if not path.is_file() or io.foreign_best(self.files, self.fingerprint, resumed_step) is not None:
            return
        state = io.load_checkpoint(path, "cpu")
        self.best = int(state["step"]), float(state["value"])

    def record(self, step: int, metrics: dict[str, float], stage) -> None:
        self.history.append({"step": step, **metrics})
        if self.rule == "last" or (step == 0 and self.rule not in KEEP_RULES):  # step 0: nothing trained yet
            return
        if self.rule in KEEP_RULES and not self.keeps_reference(metrics):
            return
        value = metrics[SELECTION[self.rule][0]]
        if better(self.rule, value, self.best[1] if self.best else None):
            self.best = step, value
            models, _ = stage.state()
            state = {"step": step, "fingerprint": self.fingerprint, "rule": self.rule, "value": value, "models": models}
            io.save_checkpoint(self.files, state, path=self.files.best_checkpoint)

    def keeps_reference(self, metrics: dict[str, float]) -> bool:
        """Whether a step is a candidate of a :data:`KEEP_RULES` rule: G1's structure kept (SSIM
        within the tolerance) and, for the FID rule, its LPIPS not raised."""
        if metrics["ssim"] < self.reference["ssim"] - self.tolerance:
            return False
        return self.rule != KEEP_SSIM_FID or metrics["lpips"] <= self.reference["lpips"]

    def apply(self, stage, last_step: int) -> dict:
        """Loads the selected networks into ``stage``; returns what was selected."""
        if self.rule == "last" or self.best is None:
            return {"rule": self.rule, "step": last_step, "metric": None, "value": None}
        stage.load_state(io.load_checkpoint(self.files.best_checkpoint, self.device)["models"])
        return {"rule": self.rule, "step": self.best[0], "metric": SELECTION[self.rule][0], "value": self.best[1]}
