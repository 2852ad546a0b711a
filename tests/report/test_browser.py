"""The report opens in a real browser and its figures render.

Headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it) loads the report twice:

1. a copy with a probe script appended (the report itself has no script), dumping the DOM after
   the load event; the probe records, for every image, whether it decoded, its natural size and
   where it lies on the page, and the page's height;
2. the report itself, as a screenshot of the whole page at the same width.

The test then looks at the screenshot where each figure lies: the pixels there must be the
embedded plot (close to the PNG scaled to that box, far from the page's blank background).
Skipped where no Chromium or Chrome binary is installed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--virtual-time-budget=10000",
)
WIDTH = 1280
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((img) => {
    const box = img.getBoundingClientRect();
    return [img.complete, img.naturalWidth, img.naturalHeight,
            box.left + window.scrollX, box.top + window.scrollY, box.width, box.height];
  });
  const height = document.documentElement.scrollHeight;
  document.body.setAttribute("data-probe", JSON.stringify({images, height}));
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
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def probed(tiny_report, tmp_path_factory: pytest.TempPathFactory) -> dict:
    binary = browser()
    folder = tmp_path_factory.mktemp("browser")
    probe = folder / "probe.html"
    probe.write_text(tiny_report.html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = run_browser(
        binary, folder / "profile", f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri()
    )
    match = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert match, f"no probe result; stderr: {done.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


@pytest.fixture(scope="module")
def screenshot(tiny_report, probed: dict, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    folder = tmp_path_factory.mktemp("screenshot")
    shot = folder / "report.png"
    run_browser(
        browser(),
        folder / "profile",
        f"--window-size={WIDTH},{probed['height']}",
        f"--screenshot={shot}",
        tiny_report.html_path.as_uri(),
    )
    assert shot.exists(), "chromium wrote no screenshot"
    with Image.open(shot) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.float64)


def embedded_pngs(report_html: str) -> list[bytes]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', report_html)
    return [base64.b64decode(data) for data in found]


def test_every_figure_decodes_in_headless_chromium(tiny_report, probed: dict) -> None:
    images = probed["images"]
    assert len(images) == tiny_report.html.count("<img ") >= 4
    for complete, width, height, *_ in images:
        assert complete and width > 100 and height > 100


def test_the_screenshot_is_not_blank(screenshot: np.ndarray, probed: dict) -> None:
    assert screenshot.shape[:2] == (probed["height"], WIDTH)
    grey = screenshot.mean(axis=2)
    assert grey.max() - grey.min() > 100  # text and figures on the page
    assert (grey < 128).mean() > 0.005  # a good deal of dark ink, not a stray pixel


def test_the_figures_are_drawn_where_the_page_puts_them(
    tiny_report, probed: dict, screenshot: np.ndarray
) -> None:
    background = np.median(screenshot.reshape(-1, 3), axis=0)  # the page's own colour
    pngs = embedded_pngs(tiny_report.html)
    assert len(pngs) == len(probed["images"])
    for png, (_, _, _, left, top, width, height) in zip(pngs, probed["images"], strict=True):
        # the image's content box, inside its 1 px border
        x0, y0 = round(left) + 1, round(top) + 1
        x1, y1 = round(left + width) - 1, round(top + height) - 1
        shown = screenshot[y0:y1, x0:x1]
        assert shown.shape[0] > 100 and shown.shape[1] > 100
        with Image.open(io.BytesIO(png)) as picture:
            expected = np.asarray(picture.convert("RGB").resize((x1 - x0, y1 - y0)), dtype=float)
        # pixels of the plot differ from the background: axes, lines, labels
        inked = np.abs(shown - background).max(axis=2) > 60
        assert inked.mean() > 0.02
        assert (np.ptp(shown, axis=2) > 80).sum() > 50  # coloured curves, not only black text
        # and they are this figure: much closer to the PNG than a blank box would be (compared
        # on 8 x 8 blocks, so that a line drawn a pixel off, or scaled otherwise, does not count)
        off = np.abs(_blocks(shown) - _blocks(expected)).mean()
        blank = np.abs(background - _blocks(expected)).mean()
        assert off < 0.4 * blank, (off, blank)


def _blocks(image: np.ndarray, size: int = 8) -> np.ndarray:
    """Mean colour of each ``size`` x ``size`` block."""
    h, w = (image.shape[0] // size) * size, (image.shape[1] // size) * size
    return image[:h, :w].reshape(h // size, size, w // size, size, 3).mean(axis=(1, 3))
