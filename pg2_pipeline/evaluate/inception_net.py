"""The FID network of :mod:`.fid` (TF-Inception 2015-12-05 up to pool3, the TorchScript file
``default_1.pt``) rebuilt as eager torch modules from that file's own weights: the same function,
computed faster on CPU.

Why: the TorchScript file runs every convolution as ``conv2d`` → ``batch_norm`` (with no affine
weight, so ``torch.jit.freeze`` does not fold it) → ``relu``, and calls ``.contiguous()`` on every
branch before concatenating (so a channels-last input is converted back to NCHW at every block).
Profiled on 2 cores: convolutions 58 % of the time, batch norm 10 %, ReLU 8 %, NCHW pooling 20 %.
Here

* each batch norm is folded into its convolution, in float64: weights ``w·s``, bias
  ``β − μ·s`` with ``s = 1/√(σ² + 0.001)`` (the file's eps) — the same affine map, rounded once;
* activations stay channels-last, which oneDNN convolves and pools natively;
* on CPU, convolution + ReLU is one oneDNN call (``mkldnn._convolution_pointwise``, the op that
  Inductor's CPU freezing pass emits) on weights reordered once to oneDNN's blocked layout;
  elsewhere (CUDA), a plain convolution and an in-place ReLU.

The structure is read from the scripted modules (their ``original_name``, the order in which their
TorchScript code calls the children, pooling arguments parsed from that code); anything unexpected
raises :class:`ValueError`. :class:`~.fid.InceptionFeatures` uses this port only for the file with
the published sha1. Features agree with the TorchScript network to ~1e-6 relative (float32
rounding; tests/evaluate/test_fid.py), and FID to ~1e-4 of its value.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3  # the eps of the scripted Conv2dLayer's batch_norm call
FEATURE_DIM = 2048


def _fused_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._convolution_pointwise)
    except (AttributeError, RuntimeError):  # a torch without the Inductor CPU ops
        return False


FUSED = _fused_available()


class ConvReLU(nn.Module):
    """``Conv2dLayer`` of the file (conv, batch norm without scale, ReLU) with the norm folded."""

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        w = scripted.weight.detach().to(torch.float64)
        scale = 1.0 / torch.sqrt(scripted.var.detach().to(torch.float64) + BN_EPS)
        bias = scripted.beta.detach().to(torch.float64) - scripted.mean.detach().to(torch.float64) * scale
        pad = scripted.padding
        self.stride = [int(scripted.stride)] * 2
        self.padding = [int(pad)] * 2 if isinstance(pad, int) else [int(p) for p in pad]
        self.register_buffer("weight", (w * scale.view(-1, 1, 1, 1)).to(torch.float32))
        self.register_buffer("bias", bias.to(torch.float32))
        self._packed: Tensor | None = None  # oneDNN-blocked weights, made at the first CPU call

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and FUSED:
            if self._packed is None:
                # reordered for this input size; oneDNN accepts the layout for other batch sizes
                self._packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                    self.weight.to_mkldnn(), self.padding, self.stride, [1, 1], 1, list(x.shape)
                )
            return torch.ops.mkldnn._convolution_pointwise(
                x, self._packed, self.bias, self.padding, self.stride, [1, 1], 1, "relu", [None], ""
            )
        return F.relu_(F.conv2d(x, self.weight, self.bias, self.stride, self.padding))


def _calls(scripted: torch.jit.ScriptModule) -> list[str]:
    """The children in the order the module's TorchScript code calls them."""
    return re.findall(r"\((\w+)\)\.forward\(", scripted.code)


def _lists(text: str) -> list[list[int]]:
    return [[int(v) for v in group.split(",")] for group in re.findall(r"\[([-\d, ]+)\]", text)]


def _pool(scripted: torch.jit.ScriptModule, name: str) -> nn.Module:
    code = scripted.code
    if scripted.original_name == "MaxPool2d":
        m = re.search(r"\(input, (\[[^\]]*\], \[[^\]]*\], \[[^\]]*\], \[[^\]]*\]), False, False, \)", code)
        if m is None or "_max_pool2d" not in code:
            raise ValueError(f"Inception port: unexpected max pooling in {name}: {code}")
        kernel, stride, padding, dilation = _lists(m.group(1))
        return nn.MaxPool2d(kernel, stride, padding, dilation)
    m = re.search(r"torch\.avg_pool2d\(input, (\[[^\]]*\], \[[^\]]*\], \[[^\]]*\])(, False, False)?\)", code)
    if m is None:
        raise ValueError(f"Inception port: unexpected average pooling in {name}: {code}")
    kernel, stride, padding = _lists(m.group(1))
    # the file's (…, False, False) = ceil_mode False, count_include_pad False; none = torch defaults
    return nn.AvgPool2d(kernel, stride, padding, count_include_pad=m.group(2) is None)


class Concat(nn.Module):
    """InceptionA-D: branches applied to one input, concatenated along channels."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class InceptionE(nn.Module):
    """Mixed_7b/c: two of the branches split into 1×3 and 3×1 convolutions."""

    CHILDREN = ("conv", "tower_conv", "tower_mixed_conv", "tower_mixed_conv_1", "tower_1_conv", "tower_1_conv_1",
                "tower_1_mixed_conv", "tower_1_mixed_conv_1", "tower_2_pool", "tower_2_conv")  # fmt: skip

    def __init__(self, scripted: torch.jit.ScriptModule, name: str):
        super().__init__()
        children = dict(scripted.named_children())
        if set(children) != set(self.CHILDREN):
            raise ValueError(f"Inception port: {name} has children {sorted(children)}, expected {self.CHILDREN}")
        for child in self.CHILDREN:
            setattr(self, child, _build(children[child], f"{name}.{child}"))

    def forward(self, x: Tensor) -> Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        branches = [self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a), self.tower_1_mixed_conv(b),
                    self.tower_1_mixed_conv_1(b), self.tower_2_conv(self.tower_2_pool(x))]  # fmt: skip
        return torch.cat(branches, 1)


def _children_in_call_order(scripted: torch.jit.ScriptModule, name: str) -> list[nn.Module]:
    children = dict(scripted.named_children())
    order = _calls(scripted)
    if sorted(order) != sorted(children):
        raise ValueError(f"Inception port: {name} calls {order}, has children {sorted(children)}")
    return [_build(children[c], f"{name}.{c}") for c in order]


def _build(scripted: torch.jit.ScriptModule, name: str) -> nn.Module:
    kind = scripted.original_name
    if kind == "Conv2dLayer":
        if "batch_norm" not in scripted.code or "0.001" not in scripted.code:
            raise ValueError(f"Inception port: {name} is not conv → batch_norm(eps 0.001) → relu")
        return ConvReLU(scripted)
    if kind in ("MaxPool2d", "AvgPool2d"):
        return _pool(scripted, name)
    if kind == "Sequential":
        return nn.Sequential(*_children_in_call_order(scripted, name))
    if kind in ("InceptionA", "InceptionB", "InceptionC", "InceptionD"):
        if "torch.cat(" not in scripted.code:
            raise ValueError(f"Inception port: {name} ({kind}) does not concatenate its branches")
        return Concat(_children_in_call_order(scripted, name))
    if kind == "InceptionE":
        return InceptionE(scripted, name)
    raise ValueError(f"Inception port: unknown module type {kind!r} at {name}")


class FoldedInception(nn.Module):
    """(N, 3, 299, 299) float32 in [-1, 1) -> (N, 2048) pool3 features, as ``default_1.pt``."""

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        if scripted.original_name != "WrapNet" or scripted.net.original_name != "InceptionV3":
            raise ValueError(f"Inception port: expected WrapNet(InceptionV3), got {scripted.original_name}")
        self.layers = _build(scripted.net.layers, "net.layers")
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, 299, 299) images, got {tuple(x.shape)}")
        x = x.contiguous(memory_format=torch.channels_last)
        return self.layers(x).reshape(-1, FEATURE_DIM)
