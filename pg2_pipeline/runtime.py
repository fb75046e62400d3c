"""Where and how tensors are computed: device choice, bf16 autocast, memory format, threads,
seeding and the allocator setting that training and benchmarks share.

    rt = Runtime.resolve(device="auto", precision="bf16", channels_last=True)
    with rt.autocast():
        ...
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch


def resolve_device(choice: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda`` (an error without CUDA)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("params ask for device 'cuda' but CUDA is not available (use 'auto' or 'cpu')")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


@functools.cache
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says: quoted beside every
    speed figure, and part of the precision cache's key."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # CPU: bf16 autocast is only fast with native bf16 instructions (AVX-512 BF16 / AMX); without
    # them it is emulated and slower than fp32.
    return cpu_has_native_bf16()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the device runs it natively and params ask for it; None = plain float32."""
    if precision == "bf16" and bf16_supported(device):
        return torch.bfloat16
    return None


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device_type``; None = plain float32 (autocast off)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp: torch.dtype | None  # autocast dtype; None = fp32
    memory_format: torch.memory_format

    @classmethod
    def resolve(cls, device: str, precision: str = "fp32", channels_last: bool = False) -> Runtime:
        dev = resolve_device(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return cls(dev, autocast_dtype(precision, dev), fmt)

    @property
    def precision(self) -> str:
        return str(self.amp) if self.amp else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device.type, self.amp)

    def seed(self, seed: int) -> None:
        """Seeds torch; on the CPU also asks for deterministic kernels (bit-exact resume)."""
        torch.manual_seed(seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)


def set_threads(n: int) -> None:
    """One place to cap torch's and OpenMP's compute threads (tests, workers)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


# glibc serves every allocation above its mmap threshold (at most 32 MB by default) with fresh
# pages from the kernel and returns them on free, so a training step that allocates the same
# large tensors again and again page-faults them in every time: a (64, 18, 128, 64) float batch
# of pose maps (38 MB) took 5× longer to make than to fill. Keeping blocks up to 256 MB in the
# heap, and not trimming it below 1 GB of free top, removes that cost.
MMAP_THRESHOLD_BYTES = 256 << 20
TRIM_THRESHOLD_BYTES = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>


def keep_large_allocations() -> bool:
    """Raises glibc's mmap and trim thresholds for this process (training and benchmarks);
    False, changing nothing, where the C library is not glibc or the user set
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (theirs wins)."""
    import ctypes
    import ctypes.util

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        )
    except (OSError, AttributeError):
        return False
