"""Ctrl-C stops a long compress at a chunk boundary and keeps a resumable partial output."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np

import vectro

from conftest import embeddings

CHILD = textwrap.dedent(
    """
    import sys, vectro
    def progress(done, total):
        if done > 0:
            print("started", done, total, flush=True)
    try:
        vectro.compress(sys.argv[1], sys.argv[2], codec="int4:rotate=1", chunk_rows=100, progress=progress)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


def test_ctrl_c_keeps_a_partial_that_resume_finishes_byte_identically(tmp_path):
    x = embeddings(20_000, 32)
    npy, out = tmp_path / "x.npy", tmp_path / "x.vectro"
    np.save(npy, x)
    env = dict(os.environ, VECTRO_TEST_SLOW_CHUNK_MS="10")
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(npy), str(out)], stdout=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    assert line.startswith("started"), line
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=120)
    assert p.returncode == 0
    assert rest.splitlines()[-1] == "interrupted", rest
    partial = tmp_path / ".x.vectro.partial"
    assert not out.exists() and partial.stat().st_size > 0

    s = vectro.compress(npy, out, codec="int4:rotate=1", chunk_rows=100, resume=True)
    assert 0 < s["resumed_rows"] < len(x) and s["rows"] == len(x)
    assert not partial.exists()
    vectro.compress(npy, tmp_path / "fresh.vectro", codec="int4:rotate=1", chunk_rows=100)
    assert out.read_bytes() == (tmp_path / "fresh.vectro").read_bytes()
    assert vectro.verify(out)["ok"]
