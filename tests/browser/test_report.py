"""`vectro report` in a real browser: Debian's headless Chromium, driven by Playwright.

The page is opened from disk with every request routed through the test: anything but the
page itself is refused and fails the test (the page must not reach the network, not even
for a font). Each figure is then screenshotted and must show data: marks of the series'
colours, not an empty frame. Screenshots are kept in $VECTRO_SCREENSHOTS (default
target/browser-screenshots) for a person to look at.

Run by scripts/test_browser.sh, which installs chromium and a venv with playwright.
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTRO = pathlib.Path(os.environ.get("VECTRO_BIN", ROOT / "target" / "release" / "vectro"))
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = pathlib.Path(os.environ.get("VECTRO_SCREENSHOTS", ROOT / "target" / "browser-screenshots"))


def vectro(*args, cwd):
    r = subprocess.run([str(VECTRO), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"vectro {' '.join(map(str, args))}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report on two containers of a synthetic 4000 × 48 set, with a peer: the page and
    its --json."""
    d = tmp_path_factory.mktemp("report")
    vectro("generate", "-q", "--rows", "4000", "--dims", "48", "--out", "x.npy", cwd=d)
    vectro("compress", "-q", "--in", "x.npy", "--out", "x.vectro", cwd=d)
    vectro("compress", "-q", "--in", "x.npy", "--codec", "binary", "--out", "b.vectro", cwd=d)
    (d / "peers.json").write_text(json.dumps([{"name": "peer PQ", "bytes_per_vector": 12, "recall": 0.5}]))
    out = vectro("report", "--json", "--orig", "x.npy", "x.vectro", "b.vectro", "--peers", "peers.json", cwd=d)
    return d / "x.report.html", json.loads(out)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def colourful_pixels(png: pathlib.Path) -> int:
    """Pixels of a saturated colour (the data marks; axes and text are grey or black)."""
    img = Image.open(png).convert("RGB")
    colours = img.getcolors(img.width * img.height) or []
    return sum(n for n, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 60)


def test_every_figure_renders_with_data_and_nothing_leaves_the_machine(report, browser):
    page_path, data = report
    url = page_path.as_uri()
    requests, refused, errors = [], [], []
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = ctx.new_page()

    def route(r):
        requests.append(r.request.url)
        if r.request.url == url:
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    assert refused == [], f"the page asked for {refused}"
    assert requests == [url]
    assert errors == []

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
    figures = page.locator("svg.figure")
    n = figures.count()
    assert n == 1 + 5 * len(data["entries"])
    expected = {"recall_vs_bytes": 3, "cosine": None, "error_norm": None, "per_dim": 48, "pca": 2 * 500, "movement": 50}
    for i in range(n):
        fig = figures.nth(i)
        name = fig.get_attribute("data-figure")
        box = fig.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200, (name, box)
        # Marks with data, as laid out by the browser: inside the figure, with a size.
        shown = fig.evaluate(
            """svg => {
                const r = svg.getBoundingClientRect();
                let n = 0;
                for (const m of svg.querySelectorAll('.bar, .pt')) {
                    const b = m.getBoundingClientRect();
                    const hasData = !m.classList.contains('bar') || m.dataset.count !== '0';
                    if (hasData && b.width > 0 && b.height > 0 &&
                        b.left >= r.left - 1 && b.right <= r.right + 1 &&
                        b.top >= r.top - 1 && b.bottom <= r.bottom + 1) n++;
                }
                return n;
            }"""
        )
        want = expected[name]
        if want is None:
            entry = data["entries"][(i - 1) // 5]
            key = "cosine_hist" if name == "cosine" else "error_norm_hist"
            want = sum(1 for b in entry[key] if b["count"] > 0)
        assert shown == want, (i, name, shown, want)
        png = SHOTS / f"{i:02d}-{name}.png"
        fig.screenshot(path=str(png))
        assert colourful_pixels(png) > 100, f"{png.name} looks empty"
    ctx.close()
