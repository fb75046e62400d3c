"""One twin image: scene + person (or clutter / fabric when no joint was annotated) + camera.

Randomness of an image comes from ``(seed, image name)`` and of its person from
``(seed, person id)`` only, so any image can be rendered alone, in any process, in any order.
"""

from __future__ import annotations

import cv2
import numpy as np

from pg2_pipeline.data.twin.appearance import (
    ANONYMOUS_IDS,
    CLOTH_COLORS,
    Appearance,
    appearance_for,
    pattern_tile,
    rng_for,
)
from pg2_pipeline.data.twin.body import analyse
from pg2_pipeline.data.twin.person import DARK, LIGHT, Painter, draw_person
from pg2_pipeline.data.twin.plan import TwinImage
from pg2_pipeline.data.twin.scene import Scene, crop_background, finish, market_scene, studio_preset, studio_scene
from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.skeleton import visible

# Typical trunk length (px) when a pose has too few joints to measure one.
DEFAULT_SCALE = {"market": 34.0, "deepfashion": 110.0}
PASSERBY_RATE = 0.2  # Market crops showing part of another pedestrian at the edge


def appearance_of(item: TwinImage, dataset: str, seed: int) -> Appearance:
    anonymous = item.person_id in ANONYMOUS_IDS
    return appearance_for(item.person_id, seed, dataset, item.image_id if anonymous else "")


def _pattern_key(item: TwinImage) -> str:
    return f"{item.person_id}/{item.image_id}" if item.person_id in ANONYMOUS_IDS else item.person_id


def render_twin_rgb(item: TwinImage, dataset: str, seed: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB twin of ``item`` at the dataset's standard size."""
    scene, u, canvas = _setup(item, dataset, seed)
    h, w = canvas.shape[:2]
    shade = np.full((h, w), 128, np.uint8)
    paint = Painter(canvas, shade, np.zeros((h, w), np.uint8))
    app = appearance_of(item, dataset, seed)
    blur = 3 if dataset == "market" else 7

    if dataset == "market" and u[5] < PASSERBY_RATE:
        _passerby(paint, scene, u, h, w)
    if not visible(item.keypoints).any():
        if dataset == "market":
            _junk(paint, app, rng_for(seed, "junk", item.image_id), h, w)
        else:
            _closeup(paint, app, seed, _pattern_key(item), rng_for(seed, "closeup", item.image_id), h, w)
            blur = 41
    else:
        body = analyse(item.keypoints, DEFAULT_SCALE[dataset])
        draw_person(paint, body, app, seed, _pattern_key(item), detail=dataset == "deepfashion")

    shade = cv2.GaussianBlur(shade, (blur, blur), 0)
    canvas = cv2.multiply(canvas, cv2.merge((shade, shade, shade)), scale=1.0 / 128.0)
    return finish(canvas, scene, u)


def render_background(item: TwinImage, dataset: str, seed: int) -> np.ndarray:
    """The frame of ``item`` without anyone in it (same framing, light and noise as
    :func:`render_twin_rgb`): what the person covers, for tests and the benchmark floor."""
    scene, u, canvas = _setup(item, dataset, seed)
    return finish(canvas, scene, u)


def _setup(item: TwinImage, dataset: str, seed: int) -> tuple[Scene, np.ndarray, np.ndarray]:
    spec = dataset_spec(dataset)
    u = rng_for(seed, "image", item.image_id).random(12)
    if dataset == "market":
        if item.camera is None:
            raise ValueError(f"{item.image_id}: Market images need a camera (got None)")
        scene = market_scene(seed, item.camera, spec.height, spec.width)
    else:
        scene = studio_scene(seed, studio_preset(seed, item.person_id), spec.height, spec.width)
    return scene, u, crop_background(scene, u, spec.height, spec.width)


def render_twin_image(item: TwinImage, dataset: str, seed: int, jpeg_quality: int) -> bytes:
    """JPEG bytes of :func:`render_twin_rgb` (deterministic: same inputs, same bytes)."""
    return encode_jpeg(render_twin_rgb(item, dataset, seed), jpeg_quality, item.image_id)


def encode_jpeg(rgb: np.ndarray, quality: int, what: str) -> bytes:
    if not 1 <= quality <= 100:
        raise ValueError(f"params twin.jpeg_quality: must be 1..100, got {quality}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"{what}: JPEG encoding failed")
    return buf.tobytes()


def _cloth(rng_value: float) -> tuple[int, int, int]:
    return CLOTH_COLORS[int(rng_value * len(CLOTH_COLORS)) % len(CLOTH_COLORS)]


def _passerby(paint: Painter, scene: Scene, u: np.ndarray, h: int, w: int) -> None:
    """Part of another pedestrian at the frame edge, as in many real Market crops."""
    x = -0.05 * w if u[6] < 0.5 else 1.05 * w
    top = h * (scene.horizon * 0.3 + 0.1 * u[7])
    paint.capsule((x, top + 0.15 * h), (x, top + 0.5 * h), 0.16 * w, 0.14 * w, _cloth(u[8]))
    paint.capsule((x, top + 0.5 * h), (x + (0.02 * w), 1.02 * h), 0.1 * w, 0.08 * w, _cloth(u[9]))


def _junk(paint: Painter, app: Appearance, rng: np.random.Generator, h: int, w: int) -> None:
    """Market junk box: a bad detection — background, often with a fragment of somebody (legs
    cut by the frame, a slice of a torso and arm) or nobody at all."""
    kind = rng.random()
    if kind < 0.45:  # legs of a person whose upper body is outside the box
        x = float(rng.uniform(0.2, 0.8) * w)
        top, r = float(rng.uniform(-0.3, 0.4) * h), float(rng.uniform(0.08, 0.16) * w)
        for side in (-1.0, 1.0):
            foot = (x + side * float(rng.uniform(0.05, 0.25)) * w, top + float(rng.uniform(0.5, 0.8)) * h)
            color = app.bottom if app.bottom_kind == "trousers" else app.skin
            paint.capsule((x + side * 0.5 * r, top), foot, r, 0.7 * r, color)
            paint.ellipse((foot[0], foot[1] + 0.6 * r), 1.2 * r, 0.55 * r, 0.0, app.shoes)
    elif kind < 0.8:  # a slice of a torso with its arm at one edge
        edge = -0.1 * w if rng.random() < 0.5 else 1.1 * w
        y0 = float(rng.uniform(0.0, 0.4) * h)
        paint.capsule((edge, y0), (edge, y0 + 0.45 * h), 0.35 * w, 0.3 * w, app.top)
        inner = edge + (0.3 * w if edge < 0 else -0.3 * w)
        paint.capsule(
            (inner, y0 + 0.05 * h),
            (inner, y0 + 0.4 * h),
            0.1 * w,
            0.08 * w,
            app.top if app.sleeves == "long" else app.skin,
        )


def _closeup(paint: Painter, app: Appearance, seed: int, key: str, rng: np.random.Generator, h: int, w: int) -> None:
    """DeepFashion detail shot without a detectable body: a piece of the garment filling most of
    the frame, with soft folds."""
    use_top = rng.random() < 0.7 or app.bottom_kind == "dress"
    color = app.top if use_top else app.bottom
    x0, x1 = float(rng.uniform(-0.2, 0.25) * w), float(rng.uniform(0.75, 1.2) * w)
    tilt = float(rng.uniform(-0.12, 0.12) * w)
    paint.masking = use_top
    paint.poly([(x0 + tilt, -2.0), (x1 + tilt, -2.0), (x1 - tilt, h + 2.0), (x0 - tilt, h + 2.0)], color, tone=False)
    if use_top:
        tile = pattern_tile(app, seed, key, 2 * max(h, w), max(6, int(app.pattern_period * 260)))
        paint.apply_pattern(tile, (w / 2, h / 2), app.top2)
    for _ in range(int(rng.integers(3, 6))):  # folds: blurred later into soft ridges
        x = float(rng.uniform(x0, x1))
        dx = float(rng.normal(0, 0.15 * w))
        cv2.line(
            paint.shade, (int(x), 0), (int(x + dx), h), DARK if rng.random() < 0.6 else LIGHT, int(rng.integers(6, 18))
        )
