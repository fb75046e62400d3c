"""One writer per asset (pg2_pipeline.locks) through the real doors: a second `pg2 materialize`
of an asset that is being written is refused in one line naming the holder, or waits with
--wait; writers of different assets run at once; a lock left by a killed writer is taken over
with a message; torchrun's rank 0 writes under its parent's lock; the Dagster UI queues a run
of an asset another run writes (the asset pools)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pg2_pipeline import locks
from pg2_pipeline.paths import ProjectPaths

from conftest import REPO, VENV_BIN

pytestmark = pytest.mark.slow
KILL_AT = str(REPO / "tests" / "kill_at.py")
LOCKED_EXIT = 75


def project_copy(tiny_manifests: Path, dest: Path) -> Path:
    skip = shutil.ignore_patterns("stage1", "stage2", "evaluation", "score", "mlflow.db", "mlartifacts", ".locks")
    shutil.copytree(tiny_manifests, dest, ignore=skip)
    return dest


def environment(root: Path) -> dict[str, str]:
    env = {**os.environ, "PG2_PROJECT_DIR": str(root), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop(locks.HELD_ENV, None)
    return env


def start(root: Path, log: Path, *args: str, pause: str | None = None) -> subprocess.Popen:
    """`pg2 ARGS` in the background, output to ``log``; ``pause``: 'NAME:GATE' holds it just
    before it renames its temporary file onto NAME (see kill_at.py)."""
    cmd = [sys.executable, "-m", "pg2_pipeline", *args]
    if pause:
        cmd = [sys.executable, KILL_AT, "pause", pause, *cmd[1:]]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=root, env=environment(root), stdout=out, stderr=subprocess.STDOUT)


def wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before {path.name}:\n{log.read_text()[-4000:]}")
        if time.time() > deadline:
            pytest.fail(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(0.1)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    code = proc.wait(timeout=timeout)
    assert code == 0, log.read_text()[-4000:]
    return log.read_text()


def test_a_second_writer_of_an_asset_is_refused_naming_the_holder_or_waits_with_wait(
    tiny_manifests, tmp_path, dagster_home
):
    from dagster import DagsterInstance

    root = project_copy(tiny_manifests, tmp_path / "p")
    gate, first_log = tmp_path / "gate", tmp_path / "first.log"
    first = start(root, first_log, "materialize", "pairs", pause=f"pairs.parquet:{gate}")
    wait_for(Path(f"{gate}.reached"), first, first_log)  # the first writer holds the lock, mid-write

    refused = subprocess.run(
        [sys.executable, "-m", "pg2_pipeline", "materialize", "pairs"],
        cwd=root, env=environment(root), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == LOCKED_EXIT, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    [run] = DagsterInstance.get().get_run_records()  # the refused command started no run
    assert run.dagster_run.run_op_concurrency.all_pools == {"pg2/pairs"}  # what the UI's queue counts
    assert lines[0].startswith("error: pairs is being written by Dagster run " + run.dagster_run.run_id)
    assert f"pid {first.pid} on {socket.gethostname()}, since " in lines[0]
    assert "`pg2 materialize pairs --wait`" in lines[0]

    log = tmp_path / "waiting.log"
    waiting = start(root, log, "materialize", "pairs", "--wait")
    deadline = time.time() + 120
    while "waiting for" not in log.read_text() and time.time() < deadline and waiting.poll() is None:
        time.sleep(0.1)
    assert waiting.poll() is None and "pairs: waiting for Dagster run " in log.read_text()
    gate.touch()  # the first writer goes on
    finish(first, first_log)
    finish(waiting, log)
    assert len(DagsterInstance.get().get_run_records()) == 2


def test_writers_of_two_different_assets_both_succeed_at_once(tiny_manifests, tmp_path, dagster_home):
    root = project_copy(tiny_manifests, tmp_path / "p")
    gate, pairs_log, index_log = tmp_path / "gate", tmp_path / "pairs.log", tmp_path / "index.log"
    pairs = start(root, pairs_log, "materialize", "pairs", pause=f"pairs.parquet:{gate}")
    wait_for(Path(f"{gate}.reached"), pairs, pairs_log)
    finish(start(root, index_log, "materialize", "image_index"), index_log)
    assert pairs.poll() is None  # image_index was written while the pairs writer held its lock
    gate.touch()
    finish(pairs, pairs_log)


def test_a_lock_left_by_a_killed_writer_is_taken_over_with_a_message(tmp_path):
    paths = ProjectPaths(tmp_path)
    code = (
        "import sys, time; from pathlib import Path; from pg2_pipeline import locks; "
        "from pg2_pipeline.paths import ProjectPaths\n"
        "with locks.hold(ProjectPaths(Path(sys.argv[1])), 'stage1', dagster_run_id='run-1'):\n"
        "    print('held', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with (
        pytest.raises(locks.AssetLockedError, match=f"Dagster run run-1, pid {holder.pid} on "),
        locks.hold(paths, "stage1"),
    ):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    said = []
    with locks.hold(paths, "stage1", say=said.append) as held:
        assert held.took_over is not None and held.took_over.pid == holder.pid
        assert locks.read_holder(paths, "stage1").pid == os.getpid()
    assert said == [f"stage1: taking over a stale lock left by {held.took_over.describe()}: that process is gone"]
    assert locks.read_holder(paths, "stage1") is None  # released: no record left behind


def test_rank_zero_writes_under_its_parents_lock_and_nobody_else_does(tmp_path):
    paths = ProjectPaths(tmp_path)
    child = (
        "import sys; from pathlib import Path; from pg2_pipeline import locks; "
        "from pg2_pipeline.paths import ProjectPaths\n"
        "try:\n"
        "    with locks.hold(ProjectPaths(Path(sys.argv[1])), 'stage2') as held: print('writing', held.holder.pid)\n"
        "except locks.AssetLockedError as exc: print('refused', exc)"
    )
    with locks.hold(paths, "stage2") as held:
        assert os.environ[locks.HELD_ENV] == f"stage2={held.holder.token}"
        ours = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True)
        stranger_env = {k: v for k, v in os.environ.items() if k != locks.HELD_ENV}
        stranger = subprocess.run(
            [sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True, env=stranger_env
        )
    assert ours.stdout.strip() == f"writing {os.getpid()}", ours.stderr
    assert stranger.stdout.startswith("refused stage2 is being written by pid "), stranger.stderr
    assert locks.HELD_ENV not in os.environ


def test_the_ui_queues_a_run_of_an_asset_that_another_run_writes(dagster_home):
    """The check the daemon's run queue makes (Dagster's own counter, at the instance's `run`
    pool granularity): a queued stage1 run waits while a stage1 run is in progress; a twin run
    does not."""
    from dagster import AssetKey, DagsterEvent, DagsterEventType, DagsterInstance, DagsterRunStatus
    from dagster._core.execution.api import create_execution_plan
    from dagster._core.op_concurrency_limits_counter import GlobalOpConcurrencyLimitsCounter

    from pg2_pipeline.definitions import ASSETS, defs, pipeline_job
    from pg2_pipeline.orchestration.run import prepare_pools

    assert {a.key.path[-1]: a.op.pool for a in ASSETS} == {a.key.path[-1]: f"pg2/{a.key.path[-1]}" for a in ASSETS}
    instance = DagsterInstance.get()
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    prepare_pools(instance)
    job = defs.resolve_job_def(pipeline_job.name)

    def run_of(name: str):
        subset = job.get_subset(asset_selection={AssetKey(name)})
        return instance.create_run_for_job(
            subset, execution_plan=create_execution_plan(subset), asset_selection=frozenset({AssetKey(name)})
        )

    writing = run_of("stage1")
    start_event = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=writing.job_name)
    instance.handle_run_event(writing.run_id, start_event)
    assert instance.get_run_by_id(writing.run_id).status == DagsterRunStatus.STARTED
    second, other = run_of("stage1"), run_of("twin")
    storage = instance.event_log_storage
    counter = GlobalOpConcurrencyLimitsCounter(
        instance,
        [second, other],
        [r for r in instance.get_run_records() if r.dagster_run.run_id == writing.run_id],
        storage.get_concurrency_keys(),
        storage.get_pool_limits(),
        pool_granularity=instance.get_concurrency_config().pool_config.pool_granularity,
    )
    assert counter.is_blocked(second) and not counter.is_blocked(other)
