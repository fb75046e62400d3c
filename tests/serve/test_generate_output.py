"""`pg2 generate` says what the model was trained on, prints nothing from MLflow or MediaPipe, and
refuses an output name that is not PNG/JPEG."""

from __future__ import annotations

import os
import subprocess

from serve_fixtures import MODEL, served_project  # noqa: F401 (a fixture)

from conftest import VENV_BIN


def generate(root, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PG2_PROJECT_DIR": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [str(VENV_BIN / "pg2"), "generate", "--model", MODEL, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_model_card_and_nothing_else(served_project):  # noqa: F811
    photo = "photos/astronaut.png"  # BlazePose runs for both the person and the pose
    proc = generate(served_project, "--image", photo, "--pose-from", photo, "-o", "out.jpg")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"wrote out.jpg (128x64) with {MODEL}"
    assert lines[1].startswith("model: pg2-generator v1 (@champion): trained on the synthetic twin of Market-1501")
    assert lines[2].startswith("note: trained on synthetic people only: a real photo comes out as a twin-like person")
    assert proc.stderr == "", f"third-party noise on stderr:\n{proc.stderr[:2000]}"
    assert (served_project / "out.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG under a JPEG name


def test_an_output_name_that_is_not_an_image_is_refused(served_project):  # noqa: F811
    photo = "photos/astronaut.png"
    proc = generate(served_project, "--image", photo, "--pose-from", photo, "-o", "out.txt")
    assert proc.returncode == 2
    assert proc.stderr == "error: out.txt: the output must be a .png, .jpg or .jpeg file name\n"
    assert not (served_project / "out.txt").exists()
