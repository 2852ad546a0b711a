"""The report opens in a real browser and its figures render.

Headless Chromium loads a copy of the report with a probe script appended (the report itself has
no script), and dumps the DOM after the load event; the probe records, for every image, whether it
decoded and its natural size. Skipped where no Chromium or Chrome binary is installed.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(
    (img) => [img.complete, img.naturalWidth, img.naturalHeight]);
  document.body.setAttribute("data-probe", JSON.stringify(images));
});
</script>"""


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium/chrome binary found")


def run_browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_figures_render_in_headless_chromium(tiny_report, tmp_path: Path) -> None:
    binary = browser()
    probe = tmp_path / "probe.html"
    probe.write_text(tiny_report.html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = run_browser(
        binary, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()
    )
    match = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert match, f"no probe result; stderr: {done.stderr[-2000:]}"
    images = json.loads(html.unescape(match.group(1)))
    assert len(images) == tiny_report.html.count("<img ") >= 4
    for complete, width, height in images:
        assert complete and width > 100 and height > 100


def test_report_screenshot_is_not_blank(tiny_report, tmp_path: Path) -> None:
    binary = browser()
    image = pytest.importorskip("PIL.Image")
    shot = tmp_path / "report.png"
    run_browser(
        binary,
        tmp_path / "profile",
        "--window-size=1280,2400",
        f"--screenshot={shot}",
        tiny_report.html_path.as_uri(),
    )
    assert shot.exists(), "chromium wrote no screenshot"
    with image.open(shot) as picture:
        colours = picture.convert("L").getextrema()
    assert colours[1] - colours[0] > 100  # text and figures, not an empty page
