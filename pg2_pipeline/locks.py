"""One writer per asset: the lock every door takes before it writes an asset's files.

The doors are the Dagster asset body (a run from the UI), ``pg2 materialize`` (which every DVC
stage runs) and torchrun's rank 0 (:mod:`pg2_pipeline.train.worker`). Each calls :func:`hold`,
which takes ``assets/.locks/<asset>.lock`` with ``flock`` and writes who holds it beside it
(``<asset>.json``: pid, host, Dagster run id, since when, command). A second writer fails at
once with :class:`AssetLockedError` naming the holder, or waits with ``wait=True``.

The kernel releases an ``flock`` when its process dies, however it dies, so a lock is never
stuck; a record left behind by a dead holder is reported when the next writer takes over.

Holding is per process and re-entrant: ``pg2 materialize`` takes the lock before it starts the
Dagster run, and the asset body inside that run takes it again (adding the run id to the
record). Child processes (torchrun and its workers) find the locks their parent holds for them
in ``$PG2_HELD_LOCKS``; rank 0 then writes under its parent's lock instead of refusing it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pg2_pipeline import fileio
from pg2_pipeline.paths import ProjectPaths

HELD_ENV = "PG2_HELD_LOCKS"  # "asset=token,asset=token": locks an ancestor process holds for us
_FROM_PARENT = os.environ.get(HELD_ENV, "")
RECORD_GRACE_S = 2.0  # how long a refused writer waits for a new holder to write its record


@dataclass(frozen=True)
class Holder:
    """Who writes an asset (the JSON record beside its lock file)."""

    asset: str
    pid: int
    host: str
    since: str  # local time, ISO 8601, seconds
    command: str
    dagster_run_id: str | None
    token: str  # tells this holder from an earlier one with a recycled pid

    def describe(self) -> str:
        run = f"Dagster run {self.dagster_run_id}, " if self.dagster_run_id else ""
        return f"{run}pid {self.pid} on {self.host}, since {self.since} (`{self.command}`)"

    def running(self) -> bool | None:
        """Whether the holder's process still exists (None: it ran on another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process
            return True
        return True


class AssetLockedError(RuntimeError):
    """Another process is writing the asset."""

    def __init__(self, asset: str, holder: Holder | None, lock_file: Path):
        self.asset, self.holder = asset, holder
        who = holder.describe() if holder else "a process that has not written its record yet"
        super().__init__(
            f"{asset} is being written by {who}; wait for it with `pg2 materialize {asset} --wait` "
            f"or stop that run (lock: {lock_file})"
        )


@dataclass(frozen=True)
class Held:
    """What :func:`hold` gives its caller: this writer's record and, when it took over a lock
    whose holder died, that holder (its Dagster run may still look alive)."""

    holder: Holder
    took_over: Holder | None = None


class _Lock:
    def __init__(self, fd: int | None, holder: Holder):
        self.fd, self.holder = fd, holder  # fd None: held by an ancestor process for us


_HELD: dict[Path, _Lock] = {}  # lock file -> this process's lock
_GUARD = threading.Lock()


def _say(message: str) -> None:
    print(message, flush=True)


def lock_file(paths: ProjectPaths, asset: str) -> Path:
    paths.asset_dir(asset)  # an unknown asset name fails here, naming the known ones
    return paths.locks / f"{asset}.lock"


def record_file(paths: ProjectPaths, asset: str) -> Path:
    return lock_file(paths, asset).with_suffix(".json")


def read_holder(paths: ProjectPaths, asset: str) -> Holder | None:
    """The record of the asset's last holder, None when there is none (or it is unreadable)."""
    try:
        raw = json.loads(record_file(paths, asset).read_text())
        return Holder(**raw)
    except (OSError, ValueError, TypeError):
        return None


@contextlib.contextmanager
def hold(
    paths: ProjectPaths,
    asset: str,
    *,
    wait: bool = False,
    dagster_run_id: str | None = None,
    say: Callable[[str], None] = _say,
) -> Iterator[Held]:
    """Holds the write lock of ``asset`` inside the block. Raises :class:`AssetLockedError`
    when another process holds it, or waits for it with ``wait``. On taking a fresh lock it
    reports a dead holder's record and removes the temporary files that killed writes left in
    the asset's folder (see :func:`pg2_pipeline.fileio.remove_unfinished_writes`)."""
    path = lock_file(paths, asset).resolve()  # one key per lock, however the root was spelled
    with _GUARD:
        mine = _HELD.get(path)
        if mine is not None and mine.fd is not None and dagster_run_id not in (None, mine.holder.dagster_run_id):
            # `pg2 materialize` took the lock before its Dagster run existed: the run id, now
            mine.holder = dataclasses.replace(mine.holder, dagster_run_id=dagster_run_id)
            fileio.write_json(record_file(paths, asset), dataclasses.asdict(mine.holder))
    if mine is not None:  # re-entry (the asset body inside `pg2 materialize`): nothing to release
        yield Held(mine.holder)
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _try_lock(fd):
            inherited = _inherited(paths, asset)
            if inherited is not None:  # our parent holds it for us (torchrun's rank 0)
                yield from _held_by_parent(path, inherited)
                return
            holder = _current_holder(paths, asset)
            if not wait:
                raise AssetLockedError(asset, holder, path)
            who = holder.describe() if holder else "another process"
            say(f"{asset}: waiting for {who} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        previous = read_holder(paths, asset)
        took_over = None
        if previous is not None:  # its process ended without clearing its record
            took_over = previous
            state = {False: "that process is gone", None: "its lock was released"}.get(previous.running(), "")
            state = state or "its lock was released (the pid now belongs to another process)"
            say(f"{asset}: taking over a stale lock left by {previous.describe()}: {state}")
        holder = Holder(
            asset=asset,
            pid=os.getpid(),
            host=socket.gethostname(),
            since=dt.datetime.now().isoformat(timespec="seconds"),
            command=_command(),
            dagster_run_id=dagster_run_id,
            token=uuid.uuid4().hex,
        )
        fileio.write_json(record_file(paths, asset), dataclasses.asdict(holder))
        folder = paths.asset_dir(asset)
        removed = fileio.remove_unfinished_writes(folder) if folder.is_dir() else []
        if removed:
            names = ", ".join(str(p.relative_to(folder)) for p in removed[:5]) + (" …" if len(removed) > 5 else "")
            say(f"{asset}: removed {len(removed)} unfinished temporary file(s) of a killed write: {names}")
        lock = _Lock(fd, holder)
        with _GUARD:
            _HELD[path] = lock
            _export_held()
        try:
            yield Held(holder, took_over)
        finally:
            with _GUARD:
                del _HELD[path]
                _export_held()
            with contextlib.suppress(FileNotFoundError):
                if read_holder(paths, asset) == lock.holder:
                    record_file(paths, asset).unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _command(limit: int = 120) -> str:
    """This process's command line, shortened (a Dagster run worker's carries a long JSON)."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    program = Path(sys.argv[0])
    name = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    line = " ".join([name, shlex.join(sys.argv[1:])]).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _current_holder(paths: ProjectPaths, asset: str) -> Holder | None:
    """The live holder's record. A writer that has just taken the lock writes its record a
    moment later: until then the file is missing or names a dead process."""
    deadline = time.monotonic() + RECORD_GRACE_S
    while True:
        holder = read_holder(paths, asset)
        if (holder is not None and holder.running() is not False) or time.monotonic() > deadline:
            return holder
        time.sleep(0.1)


def _inherited(paths: ProjectPaths, asset: str) -> Holder | None:
    """The holder when it is an ancestor that passed us its lock through ``$PG2_HELD_LOCKS``."""
    held = {tuple(item.split("=", 1)) for item in os.environ.get(HELD_ENV, "").split(",") if "=" in item}
    holder = read_holder(paths, asset)
    return holder if holder is not None and (asset, holder.token) in held else None


def _held_by_parent(path: Path, holder: Holder) -> Iterator[Held]:
    with _GUARD:
        _HELD[path] = _Lock(None, holder)
    try:
        yield Held(holder)
    finally:
        with _GUARD:
            del _HELD[path]


def _export_held() -> None:
    """``$PG2_HELD_LOCKS`` lists the locks this process holds, for the processes it starts."""
    mine = [f"{lock.holder.asset}={lock.holder.token}" for lock in _HELD.values() if lock.fd is not None]
    held = ",".join(filter(None, [_FROM_PARENT, *mine]))
    if held:
        os.environ[HELD_ENV] = held
    else:
        os.environ.pop(HELD_ENV, None)
