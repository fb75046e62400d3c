"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no
driver package and no debugging port. Chromium reads commands on its fd 3 and writes answers on
fd 4, as NUL-terminated JSON.

    with Browser(chromium, profile_dir) as browser:
        page = browser.new_page(1400, 900)
        page.navigate("http://127.0.0.1:7860/")
        page.wait_for("Number(document.body.dataset.generated) >= 1", timeout=30)

Also a small command for the README screenshot of a running ``pg2 serve``:

    python tests/serve/cdp_browser.py http://127.0.0.1:7860/ docs/images/serve_page.jpg
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Puts the pipe ends on fds 3 and 4 of the browser, then becomes Chromium. Each end is duplicated
# first, so that moving one cannot overwrite the other; a duplicate may itself land on 3 or 4, where
# dup2 does nothing, so both are then made inheritable explicitly (os.dup's copies are not).
_ON_FDS_3_AND_4 = (
    "import os, sys; r, w = os.dup(int(sys.argv[1])), os.dup(int(sys.argv[2])); "
    "os.dup2(r, 3); os.dup2(w, 4); os.set_inheritable(3, True); os.set_inheritable(4, True); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, chromium: str, profile: Path, log: Path | None = None):
        commands_r, commands_w = os.pipe()
        answers_r, answers_w = os.pipe()
        self._log = open(log or os.devnull, "wb")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ON_FDS_3_AND_4,
                str(commands_r),
                str(answers_w),
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],  # fmt: skip
            pass_fds=(commands_r, answers_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        os.close(commands_r)
        os.close(answers_w)
        self._out, self._in = commands_w, answers_r
        self._buffer = b""
        self._next_id = 0

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:  # events (no id) are not needed here
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')}")
                return answer.get("result", {})

    def new_page(self, width: int, height: int) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    def close(self) -> None:
        """Browser.close, then the whole process group is killed if anything lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrowserError, OSError):
                self.send("Browser.close", timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # renderer and GPU helpers share the group
        self.proc.wait()
        for fd in (self._out, self._in):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')} {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str | None = None):
        """Polls ``expression`` until it is truthy (a page still loading may throw: that counts as
        not yet); its value, or an error after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                value = self.evaluate(expression)
            except BrowserError as exc:
                value, last_error = None, exc
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"timed out after {timeout:.0f} s waiting for {what or expression}"
                    + (f" (last error: {last_error})" if last_error else "")
                )
            time.sleep(0.1)

    def click(self, x: float, y: float) -> None:
        self.drag([(x, y)])

    def drag(self, points: list[tuple[float, float]]) -> None:
        """Presses the left button at the first point, moves through the others, releases at the last."""
        (x0, y0), last = points[0], points[-1]
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x0, "y": y0})
        self.send(
            "Input.dispatchMouseEvent", {"type": "mousePressed", "x": x0, "y": y0, "button": "left", "clickCount": 1}
        )
        for x, y in points[1:]:
            self.send(
                "Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left", "buttons": 1}
            )
        self.send(
            "Input.dispatchMouseEvent",
            {"type": "mouseReleased", "x": last[0], "y": last[1], "button": "left", "clickCount": 1},
        )

    def set_file(self, selector: str, path: Path) -> None:
        """Chooses ``path`` in the file input ``selector`` (fires its change event)."""
        self.send("DOM.getDocument")
        found = self.send("Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(selector)})"})
        self.send("DOM.setFileInputFiles", {"files": [str(path)], "objectId": found["result"]["objectId"]})

    def screenshot(self, path: Path, quality: int = 85) -> Path:
        kind = "png" if path.suffix == ".png" else "jpeg"
        params = {"format": kind, **({"quality": quality} if kind == "jpeg" else {})}
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
        return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/serve/cdp_browser.py URL OUT.(png|jpg)", file=sys.stderr)
        return 2
    chromium = find_chromium()
    if chromium is None:
        print("error: chromium is not installed (scripts/ensure_chromium.sh)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile, Browser(chromium, Path(profile)) as browser:
        page = browser.new_page(1400, 860)
        page.navigate(argv[0])
        page.wait_for("Number(document.body.dataset.generated) >= 1", timeout=60, what="the first result")
        time.sleep(0.5)
        print(f"wrote {page.screenshot(Path(argv[1]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
