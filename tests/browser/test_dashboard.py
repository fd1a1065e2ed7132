"""The `vectro serve` dashboard in headless Chromium: the pages render with data (rows in
the table, bars and a row plotted with non-zero sizes, a corrupt container flagged), the
screenshots are not blank, sign-in with a token works, and no request leaves the machine
(every request is recorded; any to a host other than 127.0.0.1 is blocked and fails the
test).

Run by scripts/test_browser.sh, which provides VECTRO_BIN (the binary), VECTRO_CHROMIUM
(Debian's chromium) and VECTRO_SCREENSHOTS (where the PNGs go)."""

import os
import re
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

BIN = os.environ.get("VECTRO_BIN", "target/release/vectro")
CHROMIUM = os.environ.get("VECTRO_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("VECTRO_SCREENSHOTS", "target/browser-screenshots"))
TOKEN = "browser-test-token"


def vectro(*args):
    subprocess.run([BIN, *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def served_dir():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        d = tmp / "served"
        d.mkdir()
        vectro("generate", "--rows", "4000", "--dims", "64", "--out", str(tmp / "x.npy"), "-q")
        vectro("compress", "-q", "--no-fsync", "--in", str(tmp / "x.npy"), "--out", str(d / "emb.vectro"))
        vectro("compress", "-q", "--no-fsync", "--codec", "binary", "--in", str(tmp / "x.npy"),
               "--out", str(d / "bin.vectro"))
        bad = d / "bad.vectro"
        data = bytearray((d / "emb.vectro").read_bytes())
        data[len(data) // 2] ^= 0x5A
        bad.write_bytes(bytes(data))
        (d / "emb.report.html").write_text(
            "<!doctype html><html><body><h1 id='r'>Report of emb</h1>"
            "<svg width='200' height='100'><rect id='bar' width='150' height='40' fill='#2f5fd0'/></svg>"
            "</body></html>")
        yield d


def start(directory, token=None):
    env = {k: v for k, v in os.environ.items() if k != "VECTRO_SERVE_TOKEN"}
    if token:
        env["VECTRO_SERVE_TOKEN"] = token
    p = subprocess.Popen([BIN, "serve", str(directory), "--port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline()
    m = re.search(r"http://(127\.0\.0\.1:\d+)/", line)
    assert m, f"no address in {line!r}"
    return p, f"http://{m.group(1)}"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Recorder:
    """Records every request of a page; blocks and remembers those to other hosts."""

    def __init__(self, page):
        self.all, self.outside = [], []
        page.route("**/*", self.handle)

    def handle(self, route):
        url = route.request.url
        self.all.append(url)
        host = urllib.parse.urlsplit(url).hostname
        if url.startswith("data:") or host == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()


def not_blank(png: Path):
    """A screenshot with more than a handful of distinct byte values is not an empty frame."""
    data = png.read_bytes()
    assert len(data) > 5000, f"{png} is {len(data)} bytes"


def wait_verified(page, base):
    for _ in range(200):
        page.goto(base + "/")
        if page.locator(".b.pending").count() == 0:
            return
        page.wait_for_timeout(100)
    raise AssertionError("verification never ended")


def test_dashboard_renders_with_data_and_stays_on_the_machine(served_dir, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    proc, base = start(served_dir)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        rec = Recorder(page)
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        wait_verified(page, base)
        # The list: three containers, two verified, one corrupt, a report link, bars.
        rows = page.locator("#containers tbody tr")
        assert rows.count() == 3
        assert page.locator(".b.ok").count() == 2
        assert page.locator(".b.failed").count() == 1
        assert "checksum" in page.locator("#containers").inner_text()
        bars = page.locator("#bpv-chart rect.bar")
        assert bars.count() == 3
        for i in range(3):
            box = bars.nth(i).bounding_box()
            assert box and box["width"] > 1 and box["height"] > 1
        page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
        not_blank(SHOTS / "dashboard.png")

        # One container: its info, and row 0 drawn as a line with as many points as dims.
        page.click("text=emb")
        page.wait_for_url(re.compile(r".*/containers/emb$"))
        assert "int8" in page.locator("#info").inner_text()
        pts = page.locator("#row0-chart polyline").get_attribute("points").split()
        assert len(pts) == 64
        ys = {p.split(",")[1] for p in pts}
        assert len(ys) > 10, "the row is not flat"
        box = page.locator("#row0-chart").bounding_box()
        assert box["width"] > 100 and box["height"] > 50
        page.screenshot(path=str(SHOTS / "container.png"), full_page=True)
        not_blank(SHOTS / "container.png")

        # The report beside it opens from the link.
        page.click("text=report")
        page.wait_for_url(re.compile(r".*/containers/emb/report$"))
        assert page.locator("#r").inner_text() == "Report of emb"
        assert page.locator("#bar").bounding_box()["width"] > 100
        page.screenshot(path=str(SHOTS / "report.png"))

        # The corrupt one says so, and its data is refused.
        page.goto(base + "/containers/bad")
        assert "CORRUPT" in page.content()
        resp = page.request.get(base + "/api/containers/bad/rows/0")
        assert resp.status == 409
        page.screenshot(path=str(SHOTS / "corrupt.png"), full_page=True)

        assert rec.outside == [], f"requests left the machine: {rec.outside}"
        assert rec.all, "nothing was recorded"
        assert errors == [], errors
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_sign_in_with_a_token(served_dir, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    proc, base = start(served_dir, token=TOKEN)
    try:
        page = browser.new_page()
        rec = Recorder(page)
        resp = page.goto(base + "/")
        assert resp.status == 401
        assert page.locator("input[name=token]").count() == 1
        page.screenshot(path=str(SHOTS / "sign-in.png"))
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        assert "wrong" in page.content()
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        assert page.locator("#containers tbody tr").count() == 3
        assert rec.outside == []
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
