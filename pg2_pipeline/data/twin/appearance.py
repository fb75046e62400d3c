"""What a twin identity wears: a deterministic function of (person id, seed).

Every random choice in the twin goes through :func:`rng_for`, which seeds numpy from the global
seed plus a *stable* hash of strings (BLAKE2b, never Python's salted ``hash()``), so a render is
the same in every process and on every machine.

For DeepFashion the identity name carries gender and clothing category
(``fashionWOMENDressesid00000002``); the outfit follows them (a ``Dresses`` item is a dress, a
``Shorts`` item shorts) so the twin's categories mean what the real ones do.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[int, int, int]  # RGB

# Market ids '-1' (distractors) and '0000' (junk) are not people: each such box gets its own look.
ANONYMOUS_IDS = ("-1", "0000")

_FASHION_ID_RE = re.compile(r"^fashion(?P<gender>MEN|WOMEN)(?P<category>[A-Za-z_]+?)id\d{8}$")


def stable_hash(text: str) -> int:
    """64-bit hash of a string, identical in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """Generator seeded by the global seed and the stable hashes of ``keys``."""
    return np.random.default_rng([seed & 0xFFFFFFFF, *(stable_hash(k) for k in keys)])


# --------------------------------------------------------------------------------------------
# Palettes (RGB). Real street and catalogue clothing is mostly dark or neutral, so those carry
# more weight than saturated colours.

SKIN_TONES: tuple[Color, ...] = (
    (244, 208, 184), (236, 192, 160), (224, 172, 138), (205, 150, 112),
    (176, 120, 84), (141, 93, 62), (108, 70, 46), (84, 54, 38),
)  # fmt: skip
HAIR_COLORS: tuple[Color, ...] = (
    (22, 18, 16), (40, 28, 20), (70, 46, 28), (110, 72, 40),
    (170, 130, 80), (214, 184, 122), (130, 60, 30), (150, 150, 150),
)  # fmt: skip
HAIR_WEIGHTS = (0.30, 0.24, 0.16, 0.08, 0.07, 0.06, 0.05, 0.04)

CLOTH_COLORS: tuple[Color, ...] = (
    (25, 25, 28), (45, 48, 60), (30, 40, 80), (92, 94, 100), (150, 150, 152), (230, 230, 226),
    (200, 40, 45), (130, 25, 40), (235, 190, 40), (40, 120, 70), (80, 100, 50), (60, 110, 190),
    (140, 180, 220), (230, 140, 170), (150, 90, 170), (190, 150, 110), (120, 80, 50),
    (240, 120, 40), (60, 160, 160),
)  # fmt: skip
CLOTH_WEIGHTS = (
    0.13, 0.08, 0.08, 0.07, 0.06, 0.09, 0.05, 0.03, 0.03, 0.03, 0.03, 0.05,
    0.04, 0.04, 0.03, 0.05, 0.04, 0.02, 0.02,
)  # fmt: skip
DENIM: tuple[Color, ...] = ((50, 70, 110), (70, 95, 140), (35, 45, 70), (100, 125, 165))
SHOE_COLORS: tuple[Color, ...] = ((20, 20, 20), (235, 235, 235), (90, 60, 40), (60, 60, 70), (150, 40, 40))

PATTERNS = ("solid", "stripes", "checks", "print")
BOTTOMS = ("trousers", "shorts", "skirt", "dress")
SLEEVES = ("none", "short", "long")
CARRIES = (None, "bag", "backpack")
PRINT_SHAPES = ("circle", "star", "badge", "text")

# DeepFashion category -> (bottom kinds, sleeve kinds, pattern kinds) it allows.
_CATEGORY_STYLE: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Dresses": (("dress",), SLEEVES, PATTERNS),
    "Rompers_Jumpsuits": (("dress", "shorts"), ("none", "short"), PATTERNS),
    "Skirts": (("skirt",), SLEEVES, PATTERNS),
    "Shorts": (("shorts",), ("none", "short"), PATTERNS),
    "Pants": (("trousers",), SLEEVES, PATTERNS),
    "Leggings": (("trousers",), SLEEVES, ("solid",)),
    "Denim": (("trousers", "shorts"), SLEEVES, PATTERNS),
    "Tees_Tanks": (("trousers", "shorts", "skirt"), ("none", "short"), PATTERNS),
    "Graphic_Tees": (("trousers", "shorts", "skirt"), ("short",), ("print",)),
    "Blouses_Shirts": (("trousers", "skirt"), ("short", "long"), PATTERNS),
    "Shirts_Polos": (("trousers", "shorts"), ("short", "long"), ("solid", "stripes", "checks")),
    "Sweaters": (("trousers", "skirt"), ("long",), ("solid", "stripes")),
    "Cardigans": (("trousers", "skirt"), ("long",), ("solid", "stripes", "checks")),
    "Sweatshirts_Hoodies": (("trousers", "shorts"), ("long",), ("solid", "print")),
    "Jackets_Coats": (("trousers", "skirt"), ("long",), ("solid", "checks")),
    "Jackets_Vests": (("trousers",), ("long", "none"), ("solid", "checks")),
    "Suiting": (("trousers",), ("long",), ("solid", "stripes")),
}


@dataclass(frozen=True)
class Appearance:
    skin: Color
    hair: Color
    hair_length: int  # 0 short, 1 chin length, 2 shoulder length and beyond
    top: Color
    top2: Color  # second colour of the pattern and the chest print
    pattern: str  # PATTERNS
    pattern_period: float  # stripe / check period in units of the body scale
    vertical_stripes: bool
    print_shape: str  # PRINT_SHAPES: the front chest print
    print_color: Color
    sleeves: str  # SLEEVES
    bottom_kind: str  # BOTTOMS ('dress' = skirt in the top's colour)
    bottom: Color
    shoes: Color
    carry: str | None  # CARRIES
    carry_color: Color
    carry_side: int  # +1: bag on the person's left, -1: right
    build: float  # width factor of limbs and torso (slim < 1 < broad)


def _pick(rng: np.random.Generator, options, weights=None):
    p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    return options[int(rng.choice(len(options), p=p))]


def _jitter(rng: np.random.Generator, color: Color, amount: int) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)  # type: ignore[return-value]


def _contrasting(rng: np.random.Generator, color: Color) -> Color:
    """A palette colour clearly different from ``color`` (pattern and print must read)."""
    base = np.asarray(color, dtype=float)
    for _ in range(20):
        other = _pick(rng, CLOTH_COLORS, CLOTH_WEIGHTS)
        if np.abs(np.asarray(other) - base).sum() > 180:
            return _jitter(rng, other, 10)
    return (235, 235, 230) if base.mean() < 128 else (25, 25, 30)


@functools.lru_cache(maxsize=4096)
def appearance_for(person_id: str, seed: int, dataset: str, image_id: str = "") -> Appearance:
    """The look of identity ``person_id``; ``image_id`` only matters for anonymous Market boxes
    (distractors, junk), which get one look per box rather than one shared by all of them."""
    key = f"{person_id}/{image_id}" if person_id in ANONYMOUS_IDS else person_id
    rng = rng_for(seed, "appearance", dataset, key)

    bottoms, sleeves, patterns = BOTTOMS, SLEEVES, PATTERNS
    feminine = rng.random() < 0.45
    m = _FASHION_ID_RE.match(person_id) if dataset == "deepfashion" else None
    if m:
        feminine = m["gender"] == "WOMEN"
        bottoms, sleeves, patterns = _CATEGORY_STYLE.get(m["category"], (BOTTOMS, SLEEVES, PATTERNS))
    elif not feminine:
        bottoms = ("trousers", "trousers", "trousers", "shorts")
    else:
        bottoms = ("trousers", "trousers", "shorts", "skirt", "dress")
    if dataset == "market":  # street clothes: mostly plain, long sleeves common
        patterns = tuple(p for p in patterns for _ in range(4 if p == "solid" else 1))

    top = _jitter(rng, _pick(rng, CLOTH_COLORS, CLOTH_WEIGHTS), 14)
    bottom_kind = _pick(rng, bottoms)
    if bottom_kind == "dress":
        bottom = top
    elif bottom_kind == "trousers" and rng.random() < 0.45:
        bottom = _jitter(rng, _pick(rng, DENIM), 10)
    else:
        bottom = _jitter(rng, _pick(rng, CLOTH_COLORS, CLOTH_WEIGHTS), 14)
    hair_length = int(rng.choice(3, p=[0.15, 0.35, 0.5] if feminine else [0.75, 0.22, 0.03]))
    carry = _pick(rng, CARRIES, (0.55, 0.22, 0.23))
    return Appearance(
        skin=_jitter(rng, _pick(rng, SKIN_TONES), 8),
        hair=_jitter(rng, _pick(rng, HAIR_COLORS, HAIR_WEIGHTS), 8),
        hair_length=hair_length,
        top=top,
        top2=_contrasting(rng, top),
        pattern=_pick(rng, patterns),
        pattern_period=float(rng.uniform(0.1, 0.17) if dataset == "market" else rng.uniform(0.12, 0.22)),
        vertical_stripes=bool(rng.random() < 0.25),
        print_shape=_pick(rng, PRINT_SHAPES),
        print_color=_contrasting(rng, top),
        sleeves=_pick(rng, sleeves),
        bottom_kind=bottom_kind,
        bottom=bottom,
        shoes=_jitter(rng, _pick(rng, SHOE_COLORS), 10),
        carry=carry,
        carry_color=_jitter(rng, _pick(rng, CLOTH_COLORS, CLOTH_WEIGHTS), 12),
        carry_side=1 if rng.random() < 0.5 else -1,
        build=float(rng.uniform(0.88, 1.14)) * (0.94 if feminine else 1.0),
    )


@functools.lru_cache(maxsize=64)
def pattern_tile(app: Appearance, seed: int, key: str, size: int, period_px: float) -> np.ndarray | None:
    """Binary ``(size, size)`` uint8 mask (255 = second colour) of the top's pattern, or None for
    a solid top. Renders crop it around the neck so the pattern moves with the body."""
    if app.pattern == "solid":
        return None
    period = max(3.0, period_px)
    coords = np.arange(size, dtype=np.float32)
    # Stripes cover ~40 % of a period: thin enough to read as a pattern, not as a second colour.
    bands = ((coords % period) < 0.4 * period).astype(np.uint8) * 255
    if app.pattern == "stripes":
        tile = (
            np.repeat(bands[:, None], size, axis=1)
            if not app.vertical_stripes
            else np.repeat(bands[None, :], size, axis=0)
        )
        return np.ascontiguousarray(tile)
    if app.pattern == "checks":
        wide = ((coords % (1.6 * period)) < 0.55 * period).astype(np.uint8) * 255
        return np.ascontiguousarray(np.maximum(wide[:, None], wide[None, :]))
    # 'print': dots / small blossoms repeating every few periods, like a printed fabric (the
    # repeat also keeps the tile cheap: one small cell, drawn once, then tiled).
    rng = rng_for(seed, "pattern", key)
    cell = int(4 * period)
    motif = np.zeros((cell, cell), np.uint8)
    radius = max(1, int(round(period * 0.22)))
    for y, x in rng.uniform(0, cell, (14, 2)).astype(int):
        for dy in (-cell, 0, cell):  # wrap around so the cell tiles seamlessly
            for dx in (-cell, 0, cell):
                cv2.circle(motif, (int(x + dx), int(y + dy)), radius, 255, -1, cv2.LINE_8)
    reps = size // cell + 1
    return np.ascontiguousarray(np.tile(motif, (reps, reps))[:size, :size])
