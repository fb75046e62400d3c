"""Score a stream of (generated, target) pairs under named protocols (:mod:`.protocols`).

One core serves both doors: ``pg2 score`` (files read through a layout, :mod:`.layouts`) and the
``score`` asset. Per batch, every protocol brings both images to its size (resize / crop /
padding), and the per-pair metrics come from the evaluation's own code
(:mod:`pg2_pipeline.evaluate.metrics`, ``lpips``, ``fid``). Work shared by protocols is done
once per batch: images prepared the same way are LPIPS-scored and Inception-featured once.
FID accumulates like torchmetrics' ``update()`` / ``compute()``: streaming statistics of the
generated features, against the real set's statistics (computed once per real set and feature
protocol and kept in the project's feature cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pg2_pipeline.evaluate import metrics as M
from pg2_pipeline.evaluate.fid import GeneratedFeatures
from pg2_pipeline.score.protocols import (
    SUPPORTED_LPIPS,
    UNAVAILABLE_FID,
    Geometry,
    Protocol,
    ssim_variant,
)

METRICS = ("ssim", "mask_ssim", "psnr", "l1", "lpips", "fid")
SKIPPABLE = ("fid", "lpips", "pckh", "mask_ssim")


@dataclass
class PairBatch:
    """Scorable pairs of one generated size: uint8 (B, 3, H, W) images and (B, 18, 2) (y, x)
    keypoints in the dataset images' frame (−1 = missing)."""

    keys: list[tuple[str, str]]  # (from, to) names
    generated: Tensor
    target: Tensor
    target_yx: Tensor
    condition_yx: Tensor


# ---------------------------------------------------------------------------------- geometry


def _resize(images: Tensor, size: tuple[int, int], how: str) -> Tensor:
    """uint8 (B, 3, h, w) -> uint8 (B, 3, H, W) the protocol's way."""
    if tuple(images.shape[-2:]) == tuple(size) or how == "none":
        return images
    if how == "crop-width":
        h, w = images.shape[-2:]
        if h != size[0] or w < size[1]:
            raise ValueError(f"crop-width takes {size[0]}-high images at least {size[1]} wide, got {h}×{w}")
        left = (w - size[1]) // 2
        return images[..., left : left + size[1]]
    if how == "cv2-linear":
        import cv2

        out = [cv2.resize(np.ascontiguousarray(im.permute(1, 2, 0).numpy()), (size[1], size[0]),
                          interpolation=cv2.INTER_LINEAR) for im in images.cpu()]  # fmt: skip
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(images.device)
    if how == "torch-bicubic-aa":
        x = F.interpolate(images.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
        return x.round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"unknown resize {how!r}")


def _keypoints_to(yx: Tensor, shape: tuple[int, int], size: tuple[int, int], how: str) -> Tensor:
    """Keypoints of images of ``shape`` (H, W) in the frame of their ``how`` to ``size``."""
    if tuple(shape) == tuple(size) or how == "none":
        return yx
    out = yx.clone().float()
    present = (yx >= 0).all(dim=-1)
    if how == "crop-width":
        out[..., 1] -= (shape[1] - size[1]) // 2
        inside = (out[..., 1] >= 0) & (out[..., 1] < size[1])
    else:
        out[..., 0] *= size[0] / shape[0]
        out[..., 1] *= size[1] / shape[1]
        inside = torch.ones_like(present)
    out[~(present & inside)] = -1
    return out


def _pad(images: Tensor, geometry: Geometry, value: int | None = None) -> Tensor:
    """``images`` centred on the protocol's canvas, filled with ``value`` (default its pad value)."""
    if geometry.pad_to is None or tuple(images.shape[-2:]) == tuple(geometry.pad_to):
        return images
    (h, w), (H, W) = images.shape[-2:], geometry.pad_to
    top, left = (H - h) // 2, (W - w) // 2
    out = images.new_full((*images.shape[:-2], H, W), geometry.pad_value if value is None else value)
    out[..., top : top + h, left : left + w] = images
    return out


# ---------------------------------------------------------------------------------- scorer


@dataclass
class ProtocolResult:
    per_pair: dict[str, list[np.ndarray]] = field(default_factory=dict)
    keys: list[tuple[str, str]] = field(default_factory=list)
    fid: object | None = None  # evaluate.fid.GeneratedFeatures, as the evaluation's
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why it holds null
    pending_poses: list = field(default_factory=list)  # (BlazePose work, target keypoints) per batch


class Scorer:
    """Accumulates per-pair metrics and FID statistics of every protocol over batches."""

    def __init__(self, protocols: list[Protocol], dataset: str, device: torch.device, *, skip: Iterable[str] = (),
                 lpips_net=None, fid_features: dict[str, Callable[[Tensor], Tensor]] | None = None,
                 poses=None):  # fmt: skip
        self.protocols, self.dataset, self.device = protocols, dataset, device
        self.skip = set(skip)
        # feature network name (FIDSpec.features) -> images to features
        self.lpips_net, self.fid_features = lpips_net, dict(fid_features or {})
        self.poses = poses  # an evaluate.pose_pool.PoseRunner (BlazePose in worker processes)
        self.results = {p.name: ProtocolResult() for p in protocols}
        for p in protocols:
            why = self.results[p.name].unavailable
            for metric in ("lpips", "fid", "mask_ssim"):
                if metric in self.skip:
                    why[metric] = "skipped (--skip)"
            if p.lpips is None:
                why.setdefault("lpips", f"not part of the {p.name} protocol")
            elif (p.lpips.net, p.lpips.version) not in SUPPORTED_LPIPS:
                why.setdefault("lpips", f"unavailable: LPIPS {p.lpips.net} v{p.lpips.version} weights are not shipped")
            elif lpips_net is None:
                why.setdefault("lpips", "unavailable: no LPIPS network loaded")
            if p.fid is None:
                why.setdefault("fid", f"not part of the {p.name} protocol")
            elif p.fid.features not in self.fid_features:
                why.setdefault("fid", f"unavailable: {p.fid.features} {UNAVAILABLE_FID[p.fid.features]}")
            if p.mask_ssim is None or self.dataset not in p.mask_datasets:
                why.setdefault("mask_ssim", f"not part of the {p.name} protocol on {dataset}")
            if "pckh" in self.skip:
                why["pckh"] = "skipped (--skip)"
            elif not p.pckh:
                why["pckh"] = f"not part of the {p.name} protocol (its lineage ran OpenPose, not shipped here)"
            elif poses is None:
                why["pckh"] = "unavailable: no BlazePose runner"

    def accepts(self, size: tuple[int, int]) -> list[str]:
        """The protocols that take generated images of ``size`` (H, W)."""
        return [p.name for p in self.protocols if tuple(size) in [tuple(s) for s in p.on(self.dataset).accepts]]

    @torch.inference_mode()
    def update(self, batch: PairBatch) -> None:
        shared: dict[tuple, dict[str, Tensor]] = {}  # preparation -> lpips / features of this batch
        gen_shape, tgt_shape = tuple(batch.generated.shape[-2:]), tuple(batch.target.shape[-2:])
        accepting = self.accepts(gen_shape)
        for p in self.protocols:
            if p.name not in accepting:
                continue
            g = p.on(self.dataset)
            why, out = self.results[p.name].unavailable, {}
            prep = (g.size, g.resize_generated, g.prepare_target)
            gen = _resize(batch.generated.to(self.device), g.size, g.resize_generated)
            tgt = _resize(batch.target.to(self.device), g.size, g.prepare_target)
            gen_p, tgt_p = _pad(gen, g), _pad(tgt, g)
            out["ssim"] = M.ssim(gen_p, tgt_p, ssim_variant(p.ssim))
            for variant in p.ssim_extra:
                out[f"ssim_{variant}"] = M.ssim(gen_p, tgt_p, ssim_variant(variant))
            if "mask_ssim" not in why:
                yx = batch.target_yx if p.mask_ssim == "target" else batch.condition_yx
                masks = M.target_pose_masks(_keypoints_to(yx, tgt_shape, g.size, g.prepare_target).to(self.device),
                                            *g.size)  # fmt: skip
                padded = _pad(masks.to(torch.uint8), g, value=0).bool()
                out["mask_ssim"] = M.ssim(gen_p, tgt_p, ssim_variant(p.ssim), mask=padded)
            if p.psnr:
                out["psnr"] = M.psnr(gen_p, tgt_p)
            if p.l1:
                out["l1"] = M.l1(gen_p, tgt_p)
            cache = shared.setdefault(prep, {})
            if "lpips" not in why:
                if "lpips" not in cache:
                    cache["lpips"] = self.lpips_net.score(gen, tgt)
                out["lpips"] = cache["lpips"]
            if "fid" not in why:
                key = f"features:{p.fid.features}"
                if key not in cache:
                    cache[key] = self.fid_features[p.fid.features](gen)
                result = self.results[p.name]
                result.fid = result.fid or GeneratedFeatures()
                result.fid.add(cache[key])
            result = self.results[p.name]
            if "pckh" not in why:  # BlazePose runs in the pool while the next batch is scored
                yx = _keypoints_to(batch.target_yx, tgt_shape, g.size, g.prepare_target)
                result.pending_poses.append((self.poses.submit(gen.cpu(), reuse=True), yx.float()))
            result.keys.extend(batch.keys)
            for name, values in out.items():
                result.per_pair.setdefault(name, []).append(values.detach().cpu().numpy().astype(np.float64))

    def compute(self, real_stats: Callable[[Protocol], object] | None) -> dict[str, dict]:
        """{protocol: {"fingerprint", "pairs", metrics…}}: means over pairs, FID against
        ``real_stats(protocol)`` (the real set's statistics), null where unavailable."""
        out = {}
        for p in self.protocols:
            result = self.results[p.name]
            row: dict = {"fingerprint": p.fingerprint, "pairs": len(result.keys)}
            for name in sorted(result.per_pair):
                row[name] = _mean(np.concatenate(result.per_pair[name]))
            for metric in ("ssim", "psnr", "l1"):
                row.setdefault(metric, None)
            row.setdefault("mask_ssim", None)
            row.setdefault("lpips", None)
            row["fid"] = None
            if "fid" not in result.unavailable:
                if result.fid is None or result.fid.n < 2:
                    result.unavailable["fid"] = "unavailable: FID needs at least 2 generated images"
                elif real_stats is None:
                    result.unavailable["fid"] = "unavailable: no real set (training images) to compare with"
                else:
                    real = real_stats(p)
                    if isinstance(real, str):
                        result.unavailable["fid"] = real
                    else:
                        row["fid"] = round(result.fid.fid_to(real), 4)
            if "pckh" not in result.unavailable:
                row.update(self._pckh(result))
            else:
                row["pckh"] = None
            row["why_null"] = {k: v for k, v in result.unavailable.items() if row.get(k) is None}
            out[p.name] = row
        return out

    def _pckh(self, result: ProtocolResult) -> dict:
        """PCKh over all pairs, BlazePose's detection rate and PCKh on the detected images (the
        evaluation's three numbers: low PCKh on blurry outputs is mostly the detector failing)."""
        from pg2_pipeline.evaluate.pckh import PCKhCounts, pckh, pckh_score

        counts, found = [], []
        for pending, target_yx in result.pending_poses:
            yx, detected = self.poses.result(pending)
            counts.append(pckh(yx, target_yx))
            found.append(detected)
        result.pending_poses = []
        fields = PCKhCounts.__dataclass_fields__
        pooled = PCKhCounts(*(torch.cat([getattr(c, f) for c in counts]) for f in fields))
        found_all = torch.cat(found)
        detected = PCKhCounts(*(getattr(pooled, f)[found_all] for f in fields))

        def score(c):
            try:
                return round(pckh_score(c), 6)
            except ValueError as exc:
                return f"unavailable: {exc}"

        return {"pckh": score(pooled), "detection_rate": round(float(found_all.float().mean()), 6),
                "pckh_detected": score(detected) if found_all.any() else "unavailable: no person detected"}  # fmt: skip

    def per_pair_columns(self) -> dict[str, dict[tuple[str, str], dict[str, float]]]:
        """{protocol: {(from, to): {metric: value}}}."""
        table = {}
        for p in self.protocols:
            result = self.results[p.name]
            columns = {k: np.concatenate(v) for k, v in result.per_pair.items()}
            table[p.name] = {key: {k: float(c[i]) for k, c in columns.items()} for i, key in enumerate(result.keys)}
        return table


def _mean(values: np.ndarray) -> float | str:
    finite = values[np.isfinite(values)]
    if len(finite) < len(values):
        bad = len(values) - len(finite)
        return f"inf ({bad} identical pairs)" if not len(finite) else round(float(finite.mean()), 6)
    return round(float(values.mean()), 6) if len(values) else None
