"""Progress bars for long work: live in a terminal, a line every ~30 s in logs (DVC stage output,
Dagster compute logs, CI), never silent."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int, desc: str, unit: str, *, enabled: bool = True, initial: int = 0) -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        mininterval=0.2 if interactive else 30.0,
        dynamic_ncols=interactive,
        ncols=None if interactive else 100,
    )
