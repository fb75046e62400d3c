"""The contact sheet: a few twin identities, each in several poses, front and back.

It is the README's picture of the data, so it favours identities seen from both sides and labels
every tile with identity, camera and view.
"""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np

from pg2_pipeline.data.twin.appearance import rng_for
from pg2_pipeline.data.twin.body import infer_view
from pg2_pipeline.data.twin.plan import TwinImage
from pg2_pipeline.data.twin.render import render_twin_rgb
from pg2_pipeline.datasets import dataset_spec
from pg2_pipeline.skeleton import visible

COLUMNS = 6
# Tile zoom: Market's 128x64 crops are tiny on a screen; DeepFashion's 256x256 are not.
ZOOM = {"market": 2.0, "deepfashion": 0.75}
PAPER, INK, MUTED = (247, 246, 243), (40, 40, 44), (110, 110, 118)
PAD, LABEL_H, TITLE_H = 8, 18, 30
FONT = cv2.FONT_HERSHEY_SIMPLEX


def contact_sheet(items: list[TwinImage], dataset: str, seed: int, rows: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB sheet with up to ``rows`` identities of ``items``."""
    chosen = _choose(items, seed, rows)
    zoom = ZOOM[dataset]
    tiles_per_row = [[(it, _tile(render_twin_rgb(it, dataset, seed), zoom)) for it in picks] for _, picks in chosen]
    th, tw = _tile_shape(dataset, zoom)
    columns = max((len(row) for row in tiles_per_row), default=COLUMNS)
    width = max(PAD + columns * (tw + PAD), 560)  # the title needs ~560 px
    height = TITLE_H + max(1, len(tiles_per_row)) * (th + LABEL_H + PAD) + PAD
    sheet = np.full((height, width, 3), PAPER, np.uint8)
    title = f"pg2-pipeline synthetic twin - {dataset}, seed {seed}: same identity per row, real poses"
    _text(sheet, title, (PAD, 20), INK, 0.45)
    if not tiles_per_row:
        _text(sheet, "(no identity with a front and a back view in this plan)", (PAD, TITLE_H + 20), MUTED, 0.4)
    for r, row in enumerate(tiles_per_row):
        y = TITLE_H + r * (th + LABEL_H + PAD)
        for c, (it, tile) in enumerate(row):
            x = PAD + c * (tw + PAD)
            sheet[y : y + th, x : x + tw] = tile
            _text(sheet, _label(it, dataset), (x + 2, y + th + 13), INK, 0.36)
    return sheet


def _choose(items: list[TwinImage], seed: int, rows: int) -> list[tuple[str, list[TwinImage]]]:
    by_id: dict[str, dict[str, list[TwinImage]]] = defaultdict(lambda: defaultdict(list))
    for it in items:
        if it.is_identity and visible(it.keypoints).sum() >= 8:
            by_id[it.person_id][infer_view(it.keypoints)].append(it)
    eligible = sorted(pid for pid, views in by_id.items() if views["front"] and views["back"])
    rng = rng_for(seed, "contact-sheet")
    picked = [eligible[i] for i in rng.permutation(len(eligible))[:rows]]
    out = []
    for pid in sorted(picked):
        views = by_id[pid]
        pool = {v: [views[v][i] for i in rng.permutation(len(views[v]))] for v in ("front", "back", "side")}
        picks = pool["front"][:3] + pool["back"][:2] + pool["side"][:1]
        rest = [it for v in ("front", "back", "side") for it in pool[v] if it not in picks]
        picks = (picks + rest)[:COLUMNS]
        order = {"front": 0, "side": 1, "back": 2}
        out.append((pid, sorted(picks, key=lambda it: (order[infer_view(it.keypoints)], it.image_id))))
    return out


def _tile_shape(dataset: str, zoom: float) -> tuple[int, int]:
    spec = dataset_spec(dataset)
    return int(round(spec.height * zoom)), int(round(spec.width * zoom))


def _tile(rgb: np.ndarray, zoom: float) -> np.ndarray:
    interp = cv2.INTER_CUBIC if zoom > 1 else cv2.INTER_AREA
    return cv2.resize(rgb, None, fx=zoom, fy=zoom, interpolation=interp)


def _label(it: TwinImage, dataset: str) -> str:
    view = infer_view(it.keypoints)
    if dataset == "market":
        return f"id {it.person_id} c{it.camera} {view}"
    return f"id {it.person_id[-8:]} {view}"


def _text(img: np.ndarray, text: str, org: tuple[int, int], color, scale: float) -> None:
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)
