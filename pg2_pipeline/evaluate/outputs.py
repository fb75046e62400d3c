"""The evaluation's test outputs as files: ``outputs/<method>/<from>___<to>.png`` (the ``files``
layout of ``pg2 score``, PNG so nothing is lost) and ``outputs/pairs.csv`` (``from,to``: the
pairs generated, what scoring those folders expects). Params ``evaluation.save_outputs``."""

from __future__ import annotations

import shutil

import numpy as np

from pg2_pipeline import fileio

SEPARATOR = "___"  # PATN's naming: <from>___<to>


def output_name(from_id: str, to_id: str) -> str:
    return f"{from_id}{SEPARATOR}{to_id}.png"


def save_outputs(files, from_ids: list[str], to_ids: list[str], images: dict[str, np.ndarray], methods) -> int:
    """Writes each method's (N, H, W, 3) uint8 images under ``files.method_outputs(method)``,
    replacing what an earlier evaluation left; returns the number of files written."""
    if files.outputs.exists():
        shutil.rmtree(files.outputs)
    if not methods:
        return 0
    written = 0
    for method in methods:
        folder = files.method_outputs(method)
        for f, t, image in zip(from_ids, to_ids, images[method], strict=True):
            fileio.write_png(folder / output_name(f, t), np.ascontiguousarray(image))
            written += 1
    fileio.write_text(files.outputs_pairs, "from,to\n" + "".join(f"{f},{t}\n" for f, t in zip(from_ids, to_ids)))
    return written
