"""Shared fixtures: a throw-away copy of the project (for DVC, Dagster CLI and end-to-end
tests) and a private Dagster instance per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from pg2_pipeline.env import DAGSTER_YAML

# Two pytest-xdist workers on two cores: one compute thread each (subprocesses inherit it), so
# parallel tests do not oversubscribe the machine.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def project_files() -> list[str]:
    """The files a fresh clone would have (tracked + new, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [f for f in out.splitlines() if (REPO / f).is_file()]


def set_params(root: Path, **updates: dict) -> None:
    """Updates sections of ``root/params.yaml``: ``set_params(root, base={'profile': 'tiny'})``."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in updates.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def set_profile(root: Path, section: str, profile: str = "tiny", **values) -> None:
    """Values of ``section`` in its ``profile`` block of ``root/params.yaml`` (the block wins over
    the section's own keys): ``set_profile(root, "stage2", select="best_fid_keep_ssim")``."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section].setdefault("profiles", {}).setdefault(profile, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(root: Path, profile: str = "tiny") -> Path:
    """A copy of the project's files in ``root`` with ``base.profile`` set."""
    for rel in project_files():
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst)
    set_params(root, base={"profile": profile})
    return root


def materialize_through(root: Path, last: str) -> None:
    """Materializes the chain up to and including ``last`` in-process (ephemeral instance)."""
    from dagster import materialize

    from pg2_pipeline.definitions import ASSETS
    from pg2_pipeline.orchestration.resources import ProjectResource

    names = [a.key.path[-1] for a in ASSETS]
    chain = ASSETS[: names.index(last) + 1]
    result = materialize(chain, resources={"project": ProjectResource(root=str(root))})
    assert result.success


def shared_project(tmp_path_factory, name: str, last: str) -> Path:
    """A tiny project materialized through ``last``, built once per test session: under
    pytest-xdist the first worker that needs it builds it while holding a file lock, and the
    others wait for it and reuse it (a stage-1 training is not repeated per worker). A build
    that failed half-way is removed and done again by the next worker that asks."""
    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        root = copy_project(tmp_path_factory.mktemp(name) / "project")
        materialize_through(root, last)
        return root
    base = tmp_path_factory.getbasetemp().parent / f"shared-{name}"  # common to the session's workers
    base.mkdir(exist_ok=True)
    root, done = base / "project", base / "done"
    with FileLock(str(base / "lock")):
        if not done.is_file():
            shutil.rmtree(root, ignore_errors=True)
            materialize_through(copy_project(root), last)
            done.write_text(last)
    return root


@pytest.fixture(scope="session")
def tiny_manifests(tmp_path_factory) -> Path:
    """A tiny project materialized through the manifests (shared, read-only for tests)."""
    return shared_project(tmp_path_factory, "tiny", "manifests")


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory) -> Path:
    """A tiny project trained through stage 2 (shared, read-only for tests)."""
    return shared_project(tmp_path_factory, "trained", "stage2")


@pytest.fixture(scope="session")
def tiny_evaluated(tiny_trained, tmp_path_factory) -> tuple[Path, dict]:
    """A copy of ``tiny_trained`` with the evaluation written (not yet published to MLflow)."""
    from pg2_pipeline.config import load_params
    from pg2_pipeline.evaluate.stage import build_evaluation
    from pg2_pipeline.paths import ProjectPaths

    root = tmp_path_factory.mktemp("evaluated") / "project"
    shutil.copytree(tiny_trained, root)
    paths = ProjectPaths(root)
    return root, build_evaluation(load_params(paths.params_file), paths, progress=False)


@pytest.fixture
def dagster_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def project(tmp_path, dagster_home, monkeypatch) -> Path:
    """A copy of the project on the tiny profile, as a fresh git repository, with the
    project environment's executables first on PATH."""
    root = copy_project(tmp_path / "project")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "fixture"], cwd=root, check=True)
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PG2_PROJECT_DIR", str(root))
    return root


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs a command, failing the test with its output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def wait_http(url: str, timeout: float, server: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Waits for ``url`` to answer 200; fails at once when ``server`` exits (with ``log``'s tail)."""

    def tail() -> str:
        return f":\n{log.read_text()[-3000:]}" if log is not None else ""

    deadline = time.time() + timeout
    while time.time() < deadline:
        if server is not None and server.poll() is not None:
            pytest.fail(f"the server exited ({server.returncode}) before {url} answered{tail()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s{tail()}")
