"""Latency of ``POST /api/generate`` (``pg2 serve``) as the page sees it: p50 / p95 over requests.

    .venv/bin/python bench/bench_serve.py [--model URI] [--requests 100] [--photo-requests 30] [--threads 1,2]

Starts ``pg2 serve --threads N`` (a subprocess, as a user runs it; N = 1, its default, then 2) with
the project's registered generator (after ``make demo``: the quick profile's) and times, from a
client in this process:

* ``given_pose``: a dataset test image (``image_id``) and a pose JSON whose wrist moves a pixel per
  request (what dragging a joint sends);
* ``photo``: an uploaded 512x512 photo (scikit-image's astronaut) cropped with BlazePose, and a pose
  JSON.

Baseline, same run: ``PoseTransfer.transfer`` called directly in this process on as many threads,
for the same inputs (no HTTP, PNG, base64 or JSON): what the web layer adds. Goal: p95 <= 300 ms
for a given pose at 128x64. The load average is printed beside the figures: on a shared machine
two compute threads that wait on each other are much slower than one. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np

from pg2_pipeline.config import load_params
from pg2_pipeline.env import find_project_root
from pg2_pipeline.inference import InferenceError, PoseTransfer, parse_pose
from pg2_pipeline.model_card import project_model_uri
from pg2_pipeline.runtime import set_threads
from pg2_pipeline.serve.gallery import Gallery
from pg2_pipeline.tracking import tracking_uri, use_tracking_uri

GOAL_P95_MS = 300.0
WARMUP = 5


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def form(fields: dict[str, bytes | tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        filename, content = value if isinstance(value, tuple) else (None, value)
        extra = f'; filename="{filename}"' if filename else ""
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post(url: str, fields: dict) -> dict:
    body, content_type = form(fields)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def stats(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {
        "requests": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[min(len(ms) - 1, int(np.ceil(0.95 * len(ms))) - 1)], 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "max_ms": round(ms[-1], 1),
    }


def timed(call, n: int) -> list[float]:
    for _ in range(WARMUP):
        call(0)
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def poses(entry, n: int) -> list[bytes]:
    """The gallery pose with its first visible wrist (or any joint) moved i px to the side."""
    keypoints = entry.keypoints.copy()
    k = next(j for j in (4, 7, *range(18)) if keypoints[j, 0] >= 0)
    out = []
    for i in range(n + WARMUP):
        moved = keypoints.copy()
        moved[k, 1] = np.clip(moved[k, 1] + (i % 10) - 5, 0, entry.size[1] - 1)
        out.append(json.dumps({"size": list(entry.size), "keypoints": moved.tolist()}).encode())
    return out


def measure_http(root, store, model, threads, person, given, photo, args) -> tuple[dict, float]:
    """Starts `pg2 serve --threads N`, times both request kinds, stops it (SIGINT, as Ctrl-C)."""
    port = free_port()
    env = {**os.environ, "PG2_PROJECT_DIR": str(root)}
    command = [str(Path(sys.executable).with_name("pg2")), "serve", "--model", model, "--port", str(port),
               "--tracking-uri", store, "--threads", str(threads)]  # fmt: skip
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/info", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"pg2 serve did not start:\n{server.stdout.read()}") from None
                time.sleep(0.5)
        api = f"{url}/api/generate"
        image_id = person.image_id.encode()
        first = post(api, {"image_id": image_id, "pose": given[0]})["seconds"]
        http_given = timed(lambda i: post(api, {"image_id": image_id, "pose": given[i]}), args.requests)
        http_photo = timed(
            lambda i: post(api, {"image": ("astronaut.png", photo), "pose": given[i]}), args.photo_requests
        )
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=60)
    return {"given_pose": stats(http_given), "photo": stats(http_photo)}, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="default: the project's registered generator")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--photo-requests", type=int, default=30)
    parser.add_argument(
        "--threads",
        type=lambda v: [int(t) for t in v.split(",")],
        default=[1, 2],
        help="torch threads of the server (and of the baseline), comma-separated (default 1,2)",
    )
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)

    from skimage import data as skdata

    root = find_project_root()
    params = load_params(root / "params.yaml")
    store = tracking_uri(params, root)
    use_tracking_uri(store)
    model = args.model or project_model_uri(root)
    gallery = Gallery.from_project(root)
    try:
        transfer = PoseTransfer(model)
    except InferenceError as exc:
        missing = f"no registered generator ({exc}): run `make demo` first"
    else:
        missing = None if gallery.people else gallery.note
    if missing:  # `make bench` on a fresh clone: nothing to measure yet, and it says so
        print(json.dumps({"skipped": missing}, indent=2))
        return 0
    person, target = gallery.get(gallery.people[0]), gallery.get(gallery.poses[0])
    photo = cv2.imencode(".png", cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    given = poses(target, args.requests)

    image = cv2.cvtColor(cv2.imread(str(person.path)), cv2.COLOR_BGR2RGB)
    astronaut = skdata.astronaut()
    keypoints = [parse_pose(p, transfer.size, "pose") for p in given]
    runs = {}
    for threads in args.threads:
        http, first = measure_http(root, store, model, threads, person, given, photo, args)
        set_threads(threads)  # the baseline: the same work, in this process, without the web layer
        direct_given = timed(
            lambda i: transfer.transfer(image, keypoints[i], condition_keypoints=person.keypoints), args.requests
        )
        direct_photo = timed(lambda i: transfer.transfer(astronaut, keypoints[i]), args.photo_requests)
        runs[f"threads={threads}"] = {
            "http": http,
            "baseline_direct_transfer": {"given_pose": stats(direct_given), "photo": stats(direct_photo)},
            "server_seconds_first_request": first,
            "load_average_after": round(os.getloadavg()[0], 2),
        }
    default = runs.get("threads=1") or next(iter(runs.values()))
    result = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "model": model,
        "model_card": transfer.card.headline(),
        "image_size": list(transfer.size),
        "runs": runs,
        "goal_p95_ms_given_pose": GOAL_P95_MS,
        "goal_met_by_pg2_serve_default": default["http"]["given_pose"]["p95_ms"] <= GOAL_P95_MS,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
