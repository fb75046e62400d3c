"""What the pipeline has made so far, read back from the assets' summary files: printed after
each ``pg2 materialize`` and at the end of ``make demo`` / ``pg2 report``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pg2_pipeline.paths import ASSET_NAMES, ProjectPaths


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _rel(path: Path | str, root: Path) -> str:
    path = Path(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _twin(paths: ProjectPaths) -> list[str]:
    s = _load(paths.twin_summary)
    if not s:
        return []
    return [
        f"{s['total_images']} images ({_counts(s['images'])}, of which {s['distractor_images']} distractors "
        f"and {s['junk_images']} junk); identities: {_counts(s['identities'])}; {s['images_per_second']:.0f} images/s",
        f"dataset: {_rel(paths.twin_dataset, paths.root)}",
        f"contact sheet: {_rel(paths.twin_contact_sheet, paths.root)}",
    ]


def _image_index(paths: ProjectPaths) -> list[str]:
    s = _load(paths.image_index_summary)
    if not s:
        return []
    reasons = f" {_counts(s['quarantined_by_reason'])}" if s["quarantined"] else ""
    return [
        f"{s['images']} images ({_counts(s['images_per_split'])}); identities: {_counts(s['identities_per_split'])}",
        f"excluded: {_counts(s['excluded'])}; quarantined: {s['quarantined']} ({s['quarantine_fraction']:.2%}){reasons}",
        f"table: {_rel(paths.image_index_table, paths.root)}",
    ]


DESCRIBERS: dict[str, Callable[[ProjectPaths], list[str]]] = {
    "twin": _twin,
    "image_index": _image_index,
}


def asset_lines(name: str, root: Path) -> list[str]:
    """Lines describing what asset ``name`` made (empty when it has not been materialized)."""
    lines = DESCRIBERS.get(name, lambda p: [])(ProjectPaths(root))
    return [f"{name:<12} {line}" if i == 0 else f"{'':<12} {line}" for i, line in enumerate(lines)]


def print_report(root: Path) -> None:
    lines = [line for name in ASSET_NAMES for line in asset_lines(name, root)]
    print("\n==> what the pipeline made")
    print("\n".join(lines) if lines else "nothing yet: run `make demo`")
