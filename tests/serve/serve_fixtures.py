"""What the page's tests share: the tiny evaluated project with its generator registered as
@champion, a few photos, a free port and a multipart client (urllib has none)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from pg2_pipeline.config import load_params
from pg2_pipeline.evaluate.stage import champion_gate
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.registry.publish import publish_evaluation

MODEL = "models:/pg2-generator@champion"


@pytest.fixture(scope="module")
def served_project(tiny_evaluated, tmp_path_factory) -> Path:
    """A copy of the tiny evaluated project whose generator is registered with @champion (the
    gate is made to pass, as in tests/test_inference.py), and ``photos/``."""
    src, summary = tiny_evaluated
    root = tmp_path_factory.mktemp("serve") / "project"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    paths = ProjectPaths(root)
    metrics = dataclasses.replace(summary.metrics, stage2={**summary.metrics.stage2, "mask_ssim": 1.0})
    publish_evaluation(load_params(paths.params_file), paths, dataclasses.replace(summary, gate=champion_gate(metrics)))
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "wall.png"), np.full((300, 200, 3), 128, np.uint8))
    (photos / "notes.txt").write_text("not a photo\n")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_form(url: str, fields: dict[str, str | bytes | tuple[str, bytes]], timeout: float = 120) -> tuple[int, dict]:
    """POSTs multipart/form-data; a (filename, bytes) value is a file. Returns (status, JSON)."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        filename, content = value if isinstance(value, tuple) else (None, value)
        content = content.encode() if isinstance(content, str) else content
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    return _send(request, timeout)


def get_json(url: str, timeout: float = 60) -> tuple[int, dict]:
    return _send(urllib.request.Request(url), timeout)


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
