"""Small picture helpers shared by the assets: grids of images with labels, and embedding a PNG
in Dagster Markdown metadata."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def label(image: np.ndarray, text: str, scale: float = 0.35) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with ``text`` on a dark band at the top."""
    out = image.copy()
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = h + base + 3
    out[:band] = (out[:band].astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(out, text, (2, h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(images: Sequence[np.ndarray], cols: int, pad: int = 2, background: int = 255) -> np.ndarray:
    """Tiles equally sized RGB images into rows of ``cols``."""
    if not images:
        raise ValueError("grid needs at least one image")
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(images):
        if im.shape[:2] != (h, w):
            raise ValueError(f"grid image {i} is {im.shape[:2]}, expected {(h, w)}")
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = im if im.ndim == 3 else im[..., None]
    return out


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def read_rgb(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def markdown_image(path: str | Path, alt: str = "preview", max_width: int = 900) -> str:
    """Markdown embedding a PNG as a data URI (Dagster's UI renders it inline), downscaled to
    ``max_width`` pixels so the event log stays small."""
    image = read_rgb(path)
    if image.shape[1] > max_width:
        f = max_width / image.shape[1]
        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.tobytes()).decode()})"


def figure_rgb(fig) -> np.ndarray:
    """A matplotlib figure as an RGB uint8 array; closes the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
