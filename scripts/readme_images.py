#!/usr/bin/env python
"""Refreshes the pictures in docs/images/ and the demo metrics table in README.md from a finished `make demo`.

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
        readme = out.parent.parent / "README.md"
        readme.write_text(with_demo_table(readme.read_text(), metrics.read_text()))
        print(f"{readme}: demo metrics table")


def with_demo_table(readme: str, metrics_md: str) -> str:
    """The README with the text between the demo-metrics markers replaced by the report's first table."""
    lines = metrics_md.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    start_mark, end_mark = "<!-- demo-metrics:start -->", "<!-- demo-metrics:end -->"
    if start_mark not in readme or end_mark not in readme:
        raise SystemExit(f"README.md: the markers {start_mark} / {end_mark} are missing")
    head, rest = readme.split(start_mark, 1)
    _, tail = rest.split(end_mark, 1)
    return head + start_mark + "\n" + "\n".join(lines[first:end]) + "\n" + end_mark + tail


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
