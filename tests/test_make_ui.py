"""`make ui` stops its three servers (Dagster, MLflow, the pose-transfer page), and everything they
started, on SIGTERM (a process manager, `kill PID`) and on SIGINT (Ctrl-C, which the terminal sends
to the whole foreground process group)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Nobody listens on ``port`` (SO_REUSEADDR: connections of the probes may linger in
    TIME_WAIT after the server closed; they do not hold the port)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose environment carries ``marker`` (every descendant inherits it,
    whatever process group or session it moved to)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes() and (proc / "stat").read_text().split()[2] != "Z":
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


# Run make the way a shell in a terminal starts it: no blocked signals, SIGINT and SIGTERM at their
# defaults. Ignored and blocked signals survive exec, this test runs in a pytest worker that
# earlier tests (in-process Dagster, MLflow, torch threads) may have changed, and a shell cannot
# trap a signal that was ignored when it started. (An exec wrapper, not preexec_fn: the worker has
# threads.)
LIKE_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, set()); "
    "[signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)]; "
    "os.execvp(sys.argv[1], sys.argv[1:])",
]


def signal_state(pid: int) -> str:
    """The SigBlk / SigIgn lines of /proc/PID/status (why a signal may not arrive)."""
    with contextlib.suppress(OSError):
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return "; ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn")))
    return "gone"


def _log(tmp_path: Path) -> str:
    return (tmp_path / "ui.log").read_text()[-3000:]


@pytest.mark.parametrize("how", ["SIGTERM to make", "SIGINT to the foreground group (Ctrl-C)"])
def test_make_ui_leaves_nothing_behind(tmp_path, how):
    dagster_port, mlflow_port, serve_port = free_port(), free_port(), free_port()
    marker = f"PG2_UI_TEST={uuid.uuid4().hex}"
    env = {
        **os.environ,
        marker.split("=")[0]: marker.split("=")[1],
        "DAGSTER_PORT": str(dagster_port),
        "MLFLOW_PORT": str(mlflow_port),
        "SERVE_PORT": str(serve_port),  # the page starts without a model in this empty store
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    log = open(tmp_path / "ui.log", "w")
    # `-o setup`: the environment exists (this test runs in it); DAGSTER_HOME on make's command
    # line overrides the Makefile's project-local instance.
    make = subprocess.Popen(
        [*LIKE_A_TERMINAL, "make", "-C", str(REPO), "-o", "setup", "ui", f"DAGSTER_HOME={tmp_path / 'dagster_home'}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while not (
            answers(f"http://127.0.0.1:{dagster_port}/server_info")
            and answers(f"http://127.0.0.1:{mlflow_port}/health")
            and answers(f"http://127.0.0.1:{serve_port}/")
        ):
            assert make.poll() is None, f"make ui exited early:\n{(tmp_path / 'ui.log').read_text()[-3000:]}"
            assert time.time() < deadline, "the servers did not answer within 180 s"
            time.sleep(1)
        started = processes_with(marker)
        assert len(started) >= 4, started  # make, ui.sh, dagster dev (+ its children), mlflow (+ workers)

        if how.startswith("SIGTERM"):
            sig = signal.SIGTERM
            make.send_signal(sig)
        else:
            sig = signal.SIGINT
            os.killpg(make.pid, sig)
        # make passes the signal on, waits for ui.sh, then dies of the same signal
        try:
            code = make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in processes_with(marker)}
            pytest.fail(
                f"make ui still running 60 s after {how}; processes {left}; make: {signal_state(make.pid)}; "
                f"this worker: {signal_state(os.getpid())}; log:\n{_log(tmp_path)}"
            )
        assert code == -sig, _log(tmp_path)
        assert f"Error {128 + sig}" in (tmp_path / "ui.log").read_text()  # ui.sh's own exit status
        left = processes_with(marker)
        deadline = time.time() + 10
        while left and time.time() < deadline:  # ui.sh waited for its servers; allow reaping
            time.sleep(0.5)
            left = processes_with(marker)
        assert not left, (
            f"still running after make ui stopped: {[Path(f'/proc/{p}/cmdline').read_bytes()[:120] for p in left]}"
        )
        assert port_free(dagster_port) and port_free(mlflow_port) and port_free(serve_port)
        assert "stopping dagster dev" in (tmp_path / "ui.log").read_text()
    finally:
        for pid in processes_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if make.poll() is None:
            make.kill()
            make.wait()
        log.close()
