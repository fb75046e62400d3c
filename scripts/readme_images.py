#!/usr/bin/env python
"""Refreshes the pictures in docs/images/ (shown in the README) from a finished `make demo`.

    .venv/bin/python scripts/readme_images.py [PROJECT_DIR]

Each picture is downscaled to at most 900 px wide and saved as JPEG (photo-like sheets) or PNG (charts). The Dagster
lineage screenshot comes from tests/test_dagster_ui.py (PG2_SAVE_SCREENSHOT=docs/images/lineage.png).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

PICTURES = {
    "assets/twin/contact_sheet.png": "contact_sheet.jpg",
    "assets/keypoints/pose_maps_and_masks.png": "pose_maps_and_masks.png",
    "assets/stage2/samples/latest.png": "sample_grid.jpg",
    "assets/evaluation/report/examples.png": "examples.jpg",
    "assets/evaluation/report/curves.png": "curves.png",
    "demo/example.png": "generate_example.png",
    "assets/pairs/pairs_per_identity.png": "pairs_per_identity.png",
}


def main(root: Path) -> None:
    out = Path(__file__).resolve().parent.parent / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    for src, name in PICTURES.items():
        image = cv2.imread(str(root / src), cv2.IMREAD_COLOR)
        if image is None:
            print(f"missing: {root / src} (run make demo first)")
            continue
        if image.shape[1] > 900:
            f = 900 / image.shape[1]
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        # photo-like sheets as JPEG (the twin's sensor noise makes PNGs megabytes), charts as PNG
        flags = [cv2.IMWRITE_JPEG_QUALITY, 88] if name.endswith(".jpg") else [cv2.IMWRITE_PNG_COMPRESSION, 9]
        cv2.imwrite(str(out / name), image, flags)
        print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")
    metrics = root / "assets/evaluation/report/metrics.md"
    if metrics.is_file():
        (out.parent / "demo_metrics.md").write_text(metrics.read_text())
        print(f"{out.parent / 'demo_metrics.md'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
