"""vectro.report: the page and the numbers of `vectro report --json`, from Python."""

import json
import subprocess

import numpy as np
import pytest

import vectro
from conftest import embeddings


@pytest.fixture()
def pair(tmp_path):
    x = embeddings(2000, 24, seed=3)
    np.save(tmp_path / "x.npy", x)
    vectro.compress(tmp_path / "x.npy", tmp_path / "x.vectro", codec="int8")
    return tmp_path, x


def test_report_writes_the_page_beside_the_container_with_the_cli_numbers(pair, vectro_bin):
    d, _ = pair
    r = vectro.report(d / "x.npy", d / "x.vectro", svg_dir=d / "figs", pca_sample=200)
    assert r["html"] == str(d / "x.report.html")
    page = (d / "x.report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "http" not in page
    assert page.count('class="pt orig"') == 200
    assert "vectro.report(" in r["command"]
    assert len(list((d / "figs").glob("*.svg"))) == 6
    (e,) = r["entries"]
    assert sum(b["count"] for b in e["cosine_hist"]) == 2000
    assert len(e["per_dim"]["rms"]) == 24
    cli = subprocess.run(
        [str(vectro_bin), "report", "--json", "--pca-sample", "200", "--orig", d / "x.npy", d / "x.vectro", "--out", d / "c.html"],
        capture_output=True,
        text=True,
        check=True,
    )
    c = json.loads(cli.stdout)["entries"][0]
    for key in ["cosine_mean", "cosine_p1", "nmse", "recall"]:
        assert e["eval"][key] == c["eval"][key], key
    assert e["cosine_hist"] == c["cosine_hist"]
    assert e["pca"]["original"] == c["pca"]["original"]


def test_report_png_figures_decode_to_twice_the_svg_size_and_are_not_blank(pair):
    import re

    from PIL import Image

    d, _ = pair
    vectro.report(d / "x.npy", d / "x.vectro", out=d / "p.html", svg_dir=d / "pf", png=True, pca_sample=100)
    svgs = sorted((d / "pf").glob("*.svg"))
    assert len(svgs) == 6
    for svg in svgs:
        w, h = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg.read_text()).groups())
        with Image.open(svg.with_suffix(".png")) as im:
            assert im.format == "PNG"
            assert im.size == (2 * w, 2 * h), svg.name
            px = im.convert("RGB").getdata()
            marked = sum(1 for p in px if p != (255, 255, 255))
        # Axes, bars, points and labels: far more than a frame's worth of pixels.
        assert marked > (2 * w + 2 * h) * 4, f"{svg.name}: {marked} non-white pixels"


def test_report_tries_codecs_on_an_array_and_takes_peers_as_dicts(tmp_path):
    x = embeddings(1500, 16, seed=4)
    peers = [{"name": "other", "bytes_per_vector": 4, "recall": 0.5}]
    r = vectro.report(x, codecs=["int8", "binary"], out=tmp_path / "r.html", rows=1000, peers=peers)
    assert [e["label"] for e in r["entries"]] == ["int8", "binary"]
    assert r["rows"] == 1000 and r["original_rows"] == 1500
    assert r["peers"][0]["name"] == "other"
    page = (tmp_path / "r.html").read_text()
    assert page.count('class="pt peer"') == 1


def test_report_errors_are_the_cli_ones_and_write_nothing(pair):
    d, _ = pair
    with pytest.raises(vectro.UsageError):
        vectro.report(d / "x.npy")
    with pytest.raises(vectro.BadInputError, match="recall"):
        vectro.report(d / "x.npy", d / "x.vectro", peers=[{"name": "p", "bytes_per_vector": 1, "recall": 2}])
    np.save(d / "y.npy", embeddings(2000, 8))
    with pytest.raises(vectro.BadInputError, match="dims differ"):
        vectro.report(d / "y.npy", d / "x.vectro", out=d / "bad.html")
    assert not (d / "bad.html").exists()
    (d / "x.report.html").write_text("mine")
    with pytest.raises(vectro.UsageError, match="x.report.html"):
        vectro.report(d / "x.npy", d / "x.vectro")
    assert (d / "x.report.html").read_text() == "mine"
