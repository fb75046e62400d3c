"""Backgrounds and lighting: street cameras for Market-1501, a photo studio for DeepFashion.

Market-1501 was filmed by six campus cameras; a person seen by another camera appears against
another background, under another light, with another noise level — the main difficulty of
re-identification and pose transfer on it. Each twin camera therefore has its own fixed scene
(wall and ground style, colour cast, gradient, noise, blur). Scenes are built once per
(seed, camera) and cached; a single image only crops them at a random offset and varies
brightness and noise phase, which keeps a render well under a millisecond.

DeepFashion In-shop photos are catalogue shots on light, almost uniform backdrops; the twin has a
handful of studio presets and picks one per identity (one photo session per item).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from pg2_pipeline.data.twin.appearance import CLOTH_COLORS, rng_for, stable_hash

MARGIN = 12  # px of background around the frame that per-image offsets may reveal
STUDIO_PRESETS = 5


@dataclass(frozen=True)
class Scene:
    background: np.ndarray  # (H + 2*MARGIN, W + 2*MARGIN, 3) uint8 RGB, before lighting
    gain: np.ndarray  # (H, W, 3) uint8 light multiplier, 128 = x1 (colour cast, gradient, vignette)
    noise: np.ndarray | None  # (H + 2*MARGIN, W + 2*MARGIN, 3) uint8 sensor noise around 128
    blur_sigma: float  # optics / compression softness; 0 = sharp
    brightness: tuple[float, float]  # per-image exposure range
    horizon: float  # fraction of the height where walls meet the ground (for clutter)


def crop_background(scene: Scene, u: np.ndarray, height: int, width: int) -> np.ndarray:
    """A writable copy of the scene seen from a slightly shifted framing (``u``: uniforms)."""
    oy = int(u[0] * (2 * MARGIN + 1))
    ox = int(u[1] * (2 * MARGIN + 1))
    return scene.background[oy : oy + height, ox : ox + width].copy()


def finish(image: np.ndarray, scene: Scene, u: np.ndarray) -> np.ndarray:
    """Applies the camera: light (cast, gradient, exposure), softness, then sensor noise."""
    lo, hi = scene.brightness
    image = cv2.multiply(image, scene.gain, scale=(lo + (hi - lo) * u[2]) / 128.0)
    if scene.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (3, 3), scene.blur_sigma)
    if scene.noise is not None:
        h, w = image.shape[:2]
        oy = int(u[3] * (2 * MARGIN + 1))
        ox = int(u[4] * (2 * MARGIN + 1))
        image = cv2.addWeighted(image, 1.0, scene.noise[oy : oy + h, ox : ox + w], 1.0, -128.0)
    return image


# --------------------------------------------------------------------------------------------
# Market-1501 street cameras.

WALL_STYLES = ("brick", "windows", "shrubs", "glass", "concrete", "fence")
GROUND_STYLES = ("tiles", "asphalt", "slabs", "bricks")
# (R, G, B) casts: daylight, warm evening, cool shade, fluorescent green, overcast, sodium.
LIGHT_CASTS = (
    (1.0, 1.0, 1.0),
    (1.12, 1.0, 0.82),
    (0.86, 0.96, 1.14),
    (0.93, 1.08, 0.92),
    (0.97, 0.98, 1.02),
    (1.1, 0.98, 0.85),
)


@functools.lru_cache(maxsize=16)
def market_scene(seed: int, camera: int, height: int = 128, width: int = 64) -> Scene:
    if not 1 <= camera <= 6:
        raise ValueError(f"Market-1501 camera must be 1..6, got {camera}")
    rng = rng_for(seed, "market-camera", str(camera))
    # Deal styles out as permutations so the six cameras really differ from one another.
    order = rng_for(seed, "market-camera-styles")
    walls = order.permutation(len(WALL_STYLES))
    grounds = order.permutation(len(GROUND_STYLES))
    casts = order.permutation(len(LIGHT_CASTS))
    i = camera - 1
    hb, wb = height + 2 * MARGIN, width + 2 * MARGIN
    horizon = float(rng.uniform(0.38, 0.62))
    bg = np.empty((hb, wb, 3), np.uint8)
    hy = int(horizon * hb)
    _wall(bg[:hy], WALL_STYLES[walls[i % len(walls)]], rng)
    _ground(bg[hy:], GROUND_STYLES[grounds[i % len(grounds)]], rng)
    _street_props(bg, hy, rng)
    bg = cv2.GaussianBlur(bg, (3, 3), 0.7)

    cast = np.asarray(LIGHT_CASTS[casts[i]], np.float32)
    yy = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    tilt = rng.uniform(-0.12, 0.12)  # light falling from one side
    gradient = 1.0 + rng.uniform(-0.12, 0.08) * yy + tilt * xx - 0.10 * (xx**2 + 0.5 * yy**2)
    gain = np.clip(128.0 * gradient[..., None] * cast[None, None, :], 0, 255).astype(np.uint8)

    sigma = float(rng.uniform(2.0, 5.0)) if camera != 6 else 6.5  # camera 6 is the low-res one
    noise = np.clip(128 + rng.normal(0.0, sigma, (hb, wb, 3)), 0, 255).astype(np.uint8)
    level = float(rng.uniform(0.75, 1.05))
    return Scene(
        background=bg,
        gain=gain,
        noise=noise,
        blur_sigma=float(rng.uniform(0.5, 0.8)) if camera != 6 else 1.0,
        brightness=(level * 0.88, level * 1.1),
        horizon=horizon,
    )


def _texture(rng: np.random.Generator, shape: tuple[int, int], cell: int, amount: float) -> np.ndarray:
    """Smooth random field in [-amount, amount] (upsampled coarse noise): surface wear."""
    h, w = shape
    coarse = rng.uniform(-amount, amount, (max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _fill(region: np.ndarray, color, rng: np.random.Generator, cell: int = 6, amount: float = 14.0) -> None:
    h, w = region.shape[:2]
    tex = _texture(rng, (h, w), cell, amount)[..., None] + rng.normal(0, 3.0, (h, w, 1))
    region[:] = np.clip(np.asarray(color, np.float32)[None, None, :] + tex, 0, 255).astype(np.uint8)


def _shade(color, factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * factor)) for c in color)  # type: ignore[return-value]


def _wall(region: np.ndarray, style: str, rng: np.random.Generator) -> None:
    h, w = region.shape[:2]
    if style == "brick":
        base = (int(rng.integers(140, 175)), int(rng.integers(70, 95)), int(rng.integers(55, 75)))
        _fill(region, base, rng)
        mortar = _shade(base, 1.35)
        row = int(rng.integers(4, 6))
        for k, y in enumerate(range(0, h, row)):
            cv2.line(region, (0, y), (w, y), mortar, 1)
            for x in range((k % 2) * row, w, 2 * row):
                cv2.line(region, (x, y), (x, y + row), mortar, 1)
    elif style == "windows":
        base = tuple(int(v) for v in rng.integers(150, 200, 3))
        _fill(region, base, rng)
        pw, ph = int(rng.integers(12, 18)), int(rng.integers(14, 22))
        for y in range(int(rng.integers(2, 6)), h - 4, ph + 6):
            for x in range(int(rng.integers(0, 6)), w, pw + 6):
                glass = tuple(int(v) for v in rng.integers(30, 90, 3))
                cv2.rectangle(region, (x, y), (x + pw, y + ph), glass, -1)
                cv2.line(region, (x, y + ph // 2), (x + pw, y + ph // 2), _shade(base, 0.8), 1)
    elif style == "shrubs":
        _fill(region, (70, 110, 60), rng, cell=4, amount=30.0)
        for _ in range(60):
            c = (int(rng.integers(30, 80)), int(rng.integers(80, 140)), int(rng.integers(30, 70)))
            cv2.circle(
                region, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(2, 7)), c, -1, cv2.LINE_AA
            )
    elif style == "glass":
        _fill(region, (70, 85, 95), rng, cell=10, amount=12.0)
        for x in range(int(rng.integers(0, 10)), w, int(rng.integers(14, 22))):
            cv2.line(region, (x, 0), (x, h), (40, 42, 45), 2)
        for _ in range(5):  # reflections
            x = int(rng.integers(0, w))
            cv2.line(region, (x, 0), (x + int(rng.integers(-20, 20)), h), (150, 165, 175), 1, cv2.LINE_AA)
    elif style == "concrete":
        base = tuple(int(v) for v in rng.integers(165, 200) + rng.integers(-8, 8, 3))
        _fill(region, base, rng, cell=8, amount=18.0)
        for y in range(int(rng.integers(4, 12)), h, int(rng.integers(16, 26))):
            cv2.line(region, (0, y), (w, y), _shade(base, 0.82), 1)
    else:  # fence in front of greenery
        _fill(region, (90, 120, 80), rng, cell=5, amount=25.0)
        step = int(rng.integers(5, 8))
        for x in range(0, w, step):
            cv2.line(region, (x, 0), (x, h), (45, 48, 50), 1)
        cv2.line(region, (0, int(h * 0.3)), (w, int(h * 0.3)), (45, 48, 50), 2)
    # A darker band where the wall meets the ground (kerb, skirting, shadow).
    cv2.rectangle(region, (0, h - 3), (w, h), _shade(tuple(int(v) for v in region[-4].mean(0)), 0.6), -1)


def _ground(region: np.ndarray, style: str, rng: np.random.Generator) -> None:
    h, w = region.shape[:2]
    if style == "asphalt":
        base = tuple(int(v) for v in rng.integers(70, 95) + rng.integers(-4, 4, 3))
        _fill(region, base, rng, cell=4, amount=10.0)
        y = int(h * rng.uniform(0.4, 0.8))
        cv2.line(region, (0, y), (w, y + int(rng.integers(-6, 6))), (210, 205, 170), 2, cv2.LINE_AA)
        return
    base = {"tiles": (175, 170, 160), "slabs": (150, 148, 140), "bricks": (160, 110, 90)}[style]
    base = tuple(int(np.clip(c + rng.integers(-15, 15), 0, 255)) for c in base)
    _fill(region, base, rng, cell=6, amount=12.0)
    line = _shade(base, 0.75)
    # Joints get further apart towards the camera (bottom): a cheap perspective cue.
    y, gap = 0.0, 3.0 if style != "slabs" else 5.0
    while y < h:
        cv2.line(region, (0, int(y)), (w, int(y)), line, 1)
        y += gap
        gap *= 1.18
    vanish = w * rng.uniform(0.2, 0.8)
    for x in np.linspace(-w, 2 * w, 16 if style == "bricks" else 10):
        cv2.line(region, (int(vanish + (x - vanish) * 0.35), 0), (int(x), h), line, 1, cv2.LINE_AA)


def _street_props(bg: np.ndarray, hy: int, rng: np.random.Generator) -> None:
    """A pole or a bin or a parked bike's silhouette: the clutter of a campus street."""
    h, w = bg.shape[:2]
    for _ in range(int(rng.integers(1, 3))):
        kind = rng.integers(0, 3)
        x = int(rng.integers(0, w))
        if kind == 0:  # pole
            top = int(rng.integers(0, hy // 2 + 1))
            cv2.rectangle(bg, (x, top), (x + int(rng.integers(2, 4)), hy + int(rng.integers(4, 14))), (55, 58, 60), -1)
        elif kind == 1:  # bin / planter
            c = CLOTH_COLORS[int(rng.integers(0, len(CLOTH_COLORS)))]
            y1 = hy + int(rng.integers(2, 10))
            cv2.rectangle(
                bg, (x, y1 - int(rng.integers(10, 18))), (x + int(rng.integers(7, 12)), y1), _shade(c, 0.8), -1
            )
        else:  # bicycle wheels
            y = hy + int(rng.integers(4, 12))
            for dx in (0, 12):
                cv2.circle(bg, (x + dx, y), 5, (40, 40, 45), 1, cv2.LINE_AA)


# --------------------------------------------------------------------------------------------
# DeepFashion studio.


@functools.lru_cache(maxsize=STUDIO_PRESETS)
def studio_scene(seed: int, preset: int, height: int = 256, width: int = 256) -> Scene:
    rng = rng_for(seed, "studio", str(preset))
    hb, wb = height + 2 * MARGIN, width + 2 * MARGIN
    tone = np.asarray(
        [(236, 236, 234), (242, 240, 236), (222, 224, 228), (232, 228, 220), (214, 216, 214)][preset % 5], np.float32
    )
    yy = np.linspace(0.0, 1.0, hb, dtype=np.float32)[:, None, None]
    xx = np.linspace(-1.0, 1.0, wb, dtype=np.float32)[None, :, None]
    # Paper backdrop: brighter behind the model, slightly darker towards the floor and corners.
    field = tone[None, None, :] * (1.02 - 0.07 * yy**2 - 0.04 * xx**2)
    field = field + _texture(rng, (hb, wb), 40, 3.0)[..., None]
    bg = np.clip(field, 0, 255).astype(np.uint8)
    gain = np.full((height, width, 3), 128, np.uint8)
    noise = np.clip(128 + rng.normal(0.0, 1.2, (hb, wb, 3)), 0, 255).astype(np.uint8)
    return Scene(background=bg, gain=gain, noise=noise, blur_sigma=0.6, brightness=(0.97, 1.03), horizon=1.0)


def studio_preset(seed: int, person_id: str) -> int:
    return (stable_hash(f"{seed}/{person_id}")) % STUDIO_PRESETS
