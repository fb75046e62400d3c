"""`pg2 generate` and its Python API against a registered tiny model: success from a pose file
and from a photo, and a clear error for each kind of bad input."""

import dataclasses
import importlib.util
import json
import multiprocessing
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from pg2_pipeline.config import load_params
from pg2_pipeline.evaluate.stage import champion_gate
from pg2_pipeline.inference import InferenceError, ModelNotFoundError, NoPersonError, PoseTransfer, read_pose_file
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.registry.publish import publish_evaluation

from conftest import VENV_BIN

PG2 = str(VENV_BIN / "pg2")
MODEL = "models:/pg2-generator@champion"


@pytest.fixture(scope="module")
def registered(tiny_evaluated, tmp_path_factory):
    src, summary = tiny_evaluated
    root = tmp_path_factory.mktemp("infer") / "project"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    metrics = dataclasses.replace(summary.metrics, stage2={**summary.metrics.stage2, "mask_ssim": 1.0})
    publish_evaluation(
        params, paths, dataclasses.replace(summary, gate=champion_gate(metrics))
    )  # the alias must exist here
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "wall.png"), np.full((300, 200, 3), 128, np.uint8))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return root


def generate(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PG2, "generate", "--model", MODEL, *args], cwd=root, capture_output=True, text=True, timeout=300
    )


def pose_file(root: Path, **content) -> Path:
    path = root / "photos" / f"pose{len(list((root / 'photos').glob('pose*')))}.json"
    path.write_text(json.dumps(content))
    return path


STANDING = [[y, 32] for y in np.linspace(12, 118, 14).tolist()] + [[10, 30], [10, 34], [11, 28], [11, 36]]


def test_generate_from_a_pose_file_and_from_a_photo(registered):
    cond = next((registered / "assets/twin/dataset/bounding_box_test").glob("00*.jpg"))
    pose = pose_file(registered, size=[128, 64], keypoints=STANDING)
    out = registered / "out.png"
    proc = generate(registered, "--image", str(cond), "--pose", str(pose), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    image = cv2.imread(str(out))
    assert image.shape == (128, 64, 3) and "wrote" in proc.stdout
    # target pose taken from a real photo with BlazePose, condition a photo of another size (cropped)
    out2 = registered / "out2.png"
    proc = generate(
        registered,
        "--image",
        str(registered / "photos/astronaut.png"),
        "--pose-from",
        str(registered / "photos/astronaut.png"),
        "-o",
        str(out2),
    )
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(out2)).shape == (128, 64, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image", "photos/missing.jpg", "--pose", "POSE"], "photos/missing.jpg: no such image file"),
        (["--image", "photos/broken.jpg", "--pose", "POSE"], "photos/broken.jpg: cannot read the image"),
        (["--image", "photos/wall.png", "--pose", "POSE"], "photos/wall.png: no person found"),
        (["--image", "photos/astronaut.png", "--pose-from", "photos/wall.png"], "photos/wall.png: no person found"),
    ],
)
def test_bad_images_fail_clearly(registered, args, message):
    pose = pose_file(registered, keypoints=STANDING)
    args = [str(pose) if a == "POSE" else a for a in args]
    proc = generate(registered, *args, "-o", "x.png")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_pose_files_fail_clearly(registered, tmp_path):
    def check(content: str, message: str) -> None:
        path = tmp_path / "p.json"
        path.write_text(content)
        with pytest.raises(InferenceError, match=message):
            read_pose_file(path, (128, 64))

    check("not json", "not a JSON pose file")
    check(json.dumps({"points": []}), "expected an object with 'keypoints'")
    check(json.dumps({"keypoints": [[1, 2]] * 17}), "must hold 18 \\[y, x\\] pairs")
    check(json.dumps({"keypoints": [[-1, -1]] * 18}), "every joint is missing")
    check(
        json.dumps({"keypoints": [[float("nan")] * 2] * 18}), "must be finite numbers, joints \\[0, 1, .*17\\] are not"
    )
    check(json.dumps({"keypoints": [[float("inf"), 3]] + STANDING[1:]}), "joints \\[0\\] are not \\(NaN or infinity\\)")
    check(json.dumps({"keypoints": STANDING, "size": [64]}), "'size' must be \\[height, width\\]")
    check(json.dumps({"keypoints": STANDING, "size": [50, 30]}), "outside the 50x30 frame")
    (tmp_path / "ok.json").write_text(json.dumps({"keypoints": STANDING, "size": [256, 128]}))
    assert np.allclose(read_pose_file(tmp_path / "ok.json", (128, 64))[0], [6, 16])  # scaled to the model frame
    cond = next((registered / "assets/twin/dataset/bounding_box_test").glob("00*.jpg"))
    proc = generate(registered, "--image", str(cond), "--pose", str(tmp_path / "nope.json"), "-o", "x.png")
    assert proc.returncode == 2 and "nope.json: no such pose file" in proc.stderr


def test_unknown_model_or_alias(registered):
    for uri, message in (
        ("models:/no-such-model@champion", "cannot load models:/no-such-model@champion"),
        ("models:/pg2-generator@gold", "cannot load models:/pg2-generator@gold"),
        ("pg2-generator", "is not a model URI"),
    ):
        proc = subprocess.run(
            [
                PG2,
                "generate",
                "--model",
                uri,
                "--image",
                "photos/astronaut.png",
                "--pose-from",
                "photos/astronaut.png",
                "-o",
                "x.png",
            ],
            cwd=registered,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_python_api_in_a_few_lines(registered, monkeypatch):
    monkeypatch.chdir(registered)
    from pg2_pipeline.tracking import tracking_uri

    search_path = list(sys.path)
    transfer = PoseTransfer(MODEL, tracking_uri=tracking_uri(load_params(registered / "params.yaml"), registered))
    # MLflow prepends the model's code folder (a partial copy of the package) to sys.path; a
    # process spawned afterwards (the evaluation's BlazePose workers) must still import the whole one
    assert sys.path == search_path
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(importlib.util.find_spec, "pg2_pipeline.pose.blazepose").result() is not None
    out = transfer.generate(registered / "photos/astronaut.png", pose_from=registered / "photos/astronaut.png")
    assert out.shape == (128, 64, 3) and out.dtype == np.uint8
    with pytest.raises(NoPersonError):
        transfer.generate(registered / "photos/wall.png", pose_from=registered / "photos/astronaut.png")
    with pytest.raises(ModelNotFoundError):
        PoseTransfer("models:/pg2-generator@nope")
