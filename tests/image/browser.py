"""Headless Debian Chromium driven by Python playwright (never `playwright install`: no downloads here)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# Distinct colours on noVNC's canvas, sampled (every 37th pixel); -1 while there is no canvas with a size.
COUNT_COLOURS = """() => {
  const c = document.querySelector('#noVNC_container canvas') || document.querySelector('canvas');
  if (!c || !c.width || !c.height) return -1;
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 37) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size;
}"""


@contextlib.contextmanager
def browser(username: str | None = "desktop", password: str | None = None) -> Iterator:
    """A fresh Chromium context (new user-data-dir) that answers HTTP auth with these credentials."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as user_data:
        kwargs = {}
        if password is not None:
            kwargs["http_credentials"] = {"username": username or "", "password": password}
        ctx = pw.chromium.launch_persistent_context(
            user_data, executable_path=CHROMIUM, headless=True, args=FLAGS, ignore_https_errors=True,
            viewport={"width": 1280, "height": 800}, **kwargs,
        )
        try:
            yield ctx
        finally:
            ctx.close()


def wait_for_desktop_frame(page, min_colours: int = 8, timeout: float = 30) -> tuple[float, int]:
    """Wait until noVNC's canvas shows at least min_colours distinct colours: (seconds waited, colours)."""
    t0 = time.monotonic()
    colours = -1
    while time.monotonic() - t0 < timeout:
        colours = page.evaluate(COUNT_COLOURS)
        if colours >= min_colours:
            return time.monotonic() - t0, colours
        time.sleep(0.05)
    raise TimeoutError(f"no desktop frame within {timeout} s (distinct colours: {colours})")


def status_text(page) -> str:
    return page.evaluate("(document.getElementById('noVNC_status') || {}).textContent || ''")
