"""Runs a module in this interpreter and kills it with SIGKILL at a chosen moment:

    python tests/kill_at.py write NAME_GLOB (-m MODULE | -c CODE) ARGS...
        when a temporary file is about to be renamed onto a final name matching NAME_GLOB (every
        atomic write ends so, see pg2_pipeline.fileio), cut it to half its size — what a kill in
        the middle of writing leaves — and SIGKILL this process before the rename
    python tests/kill_at.py after MODULE:ATTRIBUTE (-m MODULE | -c CODE) ARGS...
        SIGKILL right after the function MODULE.ATTRIBUTE returns (e.g. mlflow:register_model)
    python tests/kill_at.py pause NAME_GLOB:GATE (-m MODULE | -c CODE) ARGS...
        no kill: before that rename, create GATE.reached and wait until the file GATE exists
        (a writer held in the middle of its work for as long as a test needs)

SIGKILL runs no handler, no ``finally``, no ``atexit``: what is left on disk is what a power cut
or the OOM killer would leave.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import runpy
import signal
import sys
import time


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at_write(pattern: str) -> None:
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), pattern):
            os.truncate(src, os.path.getsize(src) // 2)
            print(f"kill_at: killed while writing {dst}", flush=True)
            die()
        return real(src, dst, *args, **kwargs)

    os.replace = replace


def pause_at_write(where: str) -> None:
    pattern, gate = where.split(":", 1)
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), pattern) and not os.path.exists(gate):
            open(gate + ".reached", "w").close()
            while not os.path.exists(gate):
                time.sleep(0.05)
        return real(src, dst, *args, **kwargs)

    os.replace = replace


def kill_after(target: str) -> None:
    module_name, attribute = target.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, attribute)

    def call(*args, **kwargs):
        result = real(*args, **kwargs)
        print(f"kill_at: killed after {target}", flush=True)
        die()
        return result

    setattr(module, attribute, call)


if __name__ == "__main__":
    mode, where, flag, what, *rest = sys.argv[1:]
    modes = {"write": kill_at_write, "after": kill_after, "pause": pause_at_write}
    if flag not in ("-m", "-c") or mode not in modes:
        raise SystemExit(__doc__)
    modes[mode](where)
    sys.argv = [what if flag == "-m" else "-c", *rest]
    if flag == "-m":
        runpy.run_module(what, run_name="__main__", alter_sys=True)
    else:
        exec(compile(what, "<kill_at -c>", "exec"), {"__name__": "__main__"})
