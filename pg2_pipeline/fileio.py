"""Atomic file writes: every output is written to a temporary file beside its destination and
renamed into place, so a crash never leaves a half-written file under a final name."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path in the destination folder; renames it to ``path`` on success and
    removes it on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp (and some writers) create 0600 files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_png(path: str | Path, image_rgb) -> Path:
    """Writes an RGB uint8 array as PNG."""
    import cv2
    import numpy as np

    image = np.ascontiguousarray(image_rgb)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode PNG for {path}")
    return write_bytes(path, buf.tobytes())


_UNFINISHED = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # mkstemp's names in atomic_path


def remove_unfinished_writes(folder: str | Path) -> list[Path]:
    """Removes the temporary files that :func:`atomic_path` leaves below ``folder`` when its
    process is killed mid-write (a final name never holds such a file) and returns them. Call
    it only where no one else is writing (under the asset's lock, :mod:`pg2_pipeline.locks`)."""
    found = sorted(p for p in Path(folder).rglob(".*.tmp") if _UNFINISHED.match(p.name) and p.is_file())
    for path in found:
        path.unlink(missing_ok=True)
    return found
