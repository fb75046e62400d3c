"""The Dagster door: `dagster dev` on a free local port, the whole-chain job launched through the
GraphQL API on the tiny profile, every asset materialized and every check passed, a screenshot
of the asset lineage page in headless Chromium, and every process we started stopped."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, FloatMetadataValue
from dagster_graphql import DagsterGraphQLClient

from pg2_pipeline.env import DAGSTER_YAML
from pg2_pipeline.paths import ASSET_NAMES

from conftest import VENV_BIN, copy_project, wait_http

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RESTORE_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGINT to the whole process group (as Ctrl-C would), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def screenshot(url: str, out: Path, profile: Path) -> None:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={profile}",
        "--window-size=1500,900",
        "--hide-scrollbars",
        "--virtual-time-budget=20000",
        f"--screenshot={out}",
        url,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_dagster_dev_runs_the_whole_chain_and_shows_the_lineage(tmp_path):
    root = copy_project(tmp_path / "project")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PG2_PROJECT_DIR": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(tmp_path / "dagster-dev.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RESTORE_SIGINT,
            str(VENV_BIN / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", timeout=180)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        run_id = client.submit_job_execution(
            "pg2_pipeline", repository_location_name="pg2_pipeline", repository_name="__repository__"
        )
        deadline = time.time() + 900
        while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE", "CANCELED"):
            assert time.time() < deadline, "the run did not finish in 15 minutes"
            time.sleep(3)
        assert status == "SUCCESS", (tmp_path / "dagster-dev.log").read_text()[-5000:]

        os.environ["DAGSTER_HOME"] = str(home)
        try:
            instance = DagsterInstance.get()
            for name in ASSET_NAMES:
                assert instance.get_latest_materialization_event(AssetKey(name)) is not None, name
            # flat float metadata: what the asset's Plots tab draws across materializations
            evaluation = instance.get_latest_materialization_event(AssetKey("evaluation")).asset_materialization
            for key in ("ssim/stage2", "mask_ssim/stage1", "lpips/copy", "ssim_to_condition/stage2"):
                assert isinstance(evaluation.metadata[key], FloatMetadataValue), key
            stage2 = instance.get_latest_materialization_event(AssetKey("stage2")).asset_materialization
            assert (
                isinstance(stage2.metadata["val_ssim"], FloatMetadataValue)
                and "step" in stage2.metadata["selected"].value
            )
            checks = [
                e.dagster_event.event_specific_data
                for e in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
            ]
            assert {c.check_name for c in checks} == {
                "quarantine_fraction",
                "coverage",
                "joints_in_bounds",
                "identities_disjoint",
                "no_self_pairs",
                "champion_gate",
            }
            failed = [c.check_name for c in checks if not c.passed]
            assert not failed, f"checks failed: {failed}"
        finally:
            os.environ.pop("DAGSTER_HOME")

        if CHROMIUM is None:
            pytest.skip(
                "Chromium is not installed (scripts/ensure_chromium.sh could not install Debian's chromium): "
                "no lineage screenshot"
            )
        shot = tmp_path / "lineage.png"
        screenshot(
            f"http://127.0.0.1:{port}/assets/evaluation?view=lineage&lineageScope=upstream&lineageDepth=10",
            shot,
            tmp_path / "chromium-profile",
        )
        assert shot.is_file() and shot.stat().st_size > 20_000
        if os.environ.get("PG2_SAVE_SCREENSHOT"):
            shutil.copy(shot, os.environ["PG2_SAVE_SCREENSHOT"])
    finally:
        stop(server)
        log.close()
    assert server.poll() is not None
    # nothing we started is left: the code server and run workers follow dagster dev out
    survivors = group_members(server.pid)
    deadline = time.time() + 30
    while survivors and time.time() < deadline:
        time.sleep(0.5)
        survivors = group_members(server.pid)
    if survivors:
        os.killpg(server.pid, signal.SIGKILL)
    assert not survivors, f"processes still running 30 s after dagster dev stopped: {survivors}"


def group_members(pgid: int) -> list[str]:
    return subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
