"""The page end to end: `pg2 serve` as a user starts it (127.0.0.1, a free port), driven in headless
Chromium (Debian's package, as tests/test_dagster_ui.py uses): the first result appears, a person and a
pose are picked, one joint is dragged and the result changes, a text file as the person shows the
server's error line. `pg2 serve` prints only its own lines. Everything started is stopped by PID.

PG2_SAVE_SERVE_SCREENSHOT=docs/images/serve_page.jpg keeps the screenshot taken after the drag."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cdp_browser import Browser, find_chromium
from serve_fixtures import free_port, served_project  # noqa: F401 (a fixture)

from conftest import VENV_BIN, wait_http

pytestmark = pytest.mark.slow
CHROMIUM = find_chromium()
SERVE_LINES = ("model: ", "note: ", "gallery: ", "pg2 serve: ")  # everything `pg2 serve` may print

GENERATED = "Number(document.body.dataset.generated || 0)"
SETTLED = "!pg2Page.state.inFlight && !pg2Page.state.pending && pg2Page.state.dragging === null"
FIRST_JOINT = """(() => {
  const s = pg2Page.state, r = document.querySelector('#editor').getBoundingClientRect();
  const [h, w] = s.size, kp = s.pose.keypoints;
  const k = kp.findIndex(([y, x]) => y >= 0 && x >= 0);
  return [k, kp[k], r.left + (kp[k][1] + 0.5) * r.width / w, r.top + (kp[k][0] + 0.5) * r.height / h,
          r.left + r.width / 2, r.top + r.height / 2, r.width / w];
})()"""


def centre(page, selector: str) -> tuple[float, float]:
    return tuple(
        page.evaluate(f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect(); "
                      "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
    )  # fmt: skip


def click_and_wait(page, selector: str) -> None:
    done = page.evaluate(GENERATED)
    page.click(*centre(page, selector))
    page.wait_for(f"{GENERATED} > {done} && {SETTLED}", timeout=60, what=f"a result after clicking {selector}")


def stop(server: subprocess.Popen) -> None:
    """Ctrl-C (SIGINT) to the server's own process group, SIGKILL if it lingers."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/ensure_chromium.sh could not)")
def test_pick_drag_and_error_in_a_real_browser(served_project, tmp_path):  # noqa: F811
    root, port = served_project, free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "PG2_PROJECT_DIR": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's own store
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(VENV_BIN / "pg2"), "serve", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"{url}api/info", 180, server, log)
        with Browser(CHROMIUM, tmp_path / "profile", tmp_path / "chromium.log") as browser:
            page = browser.new_page(1400, 860)
            page.navigate(url)
            page.wait_for(f"{GENERATED} >= 1 && {SETTLED}", timeout=90, what="the first result")
            assert page.evaluate("document.querySelector('#caveat').textContent").startswith(
                "Note: trained on synthetic people only"
            )
            assert page.evaluate("document.querySelector('#model').selectedOptions[0].textContent") == "@champion (v1)"

            click_and_wait(page, "#people img:nth-child(2)")
            chosen = page.evaluate("document.querySelector('#people img:nth-child(2)').dataset.imageId")
            assert page.evaluate("pg2Page.state.person.id") == chosen
            click_and_wait(page, "#poses canvas:nth-child(2)")

            before = page.evaluate("document.querySelector('#out-pg2').src")
            done = page.evaluate(GENERATED)
            k, start, x, y, cx, cy, scale = page.evaluate(FIRST_JOINT)
            dx, dy = (40 if cx > x else -40), (30 if cy > y else -30)  # towards the middle: stays in the frame
            page.drag([(x + dx * t / 8, y + dy * t / 8) for t in range(9)])
            page.wait_for(f"{GENERATED} > {done} && {SETTLED}", timeout=60, what="a result after the drag")
            moved = page.evaluate(f"pg2Page.state.pose.keypoints[{k}]")
            assert moved[0] == pytest.approx(start[0] + dy / scale, abs=1.0), (start, moved)
            assert moved[1] == pytest.approx(start[1] + dx / scale, abs=1.0), (start, moved)
            assert page.evaluate("document.querySelector('#out-pg2').src") != before, "the result did not change"
            if os.environ.get("PG2_SAVE_SERVE_SCREENSHOT"):
                shot = page.screenshot(tmp_path / f"page{Path(os.environ['PG2_SAVE_SERVE_SCREENSHOT']).suffix}")
                shutil.copy(shot, os.environ["PG2_SAVE_SERVE_SCREENSHOT"])

            page.set_file("#person-file", root / "photos" / "notes.txt")
            error = page.wait_for(
                "!document.querySelector('#error').hidden && document.querySelector('#error').textContent",
                timeout=60,
                what="the error line",
            )
            assert error == "image (notes.txt): cannot read the image (not a JPEG/PNG/BMP file, or corrupt)"
        with urllib.request.urlopen(f"{url}api/info", timeout=30) as response:  # still serving
            assert response.status == 200
    finally:
        stop(server)
    assert server.returncode == 0, log.read_text()[-3000:]
    noise = [line for line in log.read_text().splitlines() if not line.startswith(SERVE_LINES)]
    assert not noise, f"pg2 serve printed lines that are not its own: {noise[:5]}"
