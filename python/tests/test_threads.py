"""Zero copy in, zero copy out, the GIL released during long calls, one container shared by threads."""

import os
import resource
import threading

import numpy as np
import pytest

import vectro

from conftest import embeddings


def test_an_array_is_read_in_place(tmp_path):
    x = embeddings(1000, 32)
    # The bytes the compressor reads are the array's own, at its address.
    assert vectro._vectro._borrowed_address(x) == x.ctypes.data
    # A view into a bigger C-contiguous buffer is read in place too.
    big = embeddings(3000, 32)
    view = big[1000:2000]
    assert np.shares_memory(view, big) and vectro._vectro._borrowed_address(view) == view.ctypes.data
    vectro.compress(view, tmp_path / "v.vectro")
    assert np.array_equal(vectro.decompress(tmp_path / "v.vectro"), vectro.reconstruct_embeddings(*vectro.quantize_embeddings(view)))


def test_compressing_a_big_array_does_not_copy_it(tmp_path):
    # 128 MiB of rows, touched before measuring; a copy would raise the peak by as much.
    x = np.ones((131_072, 256), dtype=np.float32)
    x[:, 0] = np.arange(len(x), dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    s = vectro.compress(x, tmp_path / "big.vectro", fsync=False, threads=2)
    grew = s["peak_rss_bytes"] - before
    assert grew < x.nbytes // 2, f"peak RSS grew by {grew >> 20} MiB for a {x.nbytes >> 20} MiB input"


def test_arrays_handed_out_own_no_copy_and_are_ordinary_numpy(tmp_path):
    vectro.compress(embeddings(100, 8), tmp_path / "x.vectro")
    c = vectro.open(tmp_path / "x.vectro")
    for a in (c[3:50], c[[1, 2]], vectro.decompress(tmp_path / "x.vectro"), vectro.quantize_embeddings(c[:])[0]):
        # The buffer the Rust side filled is the array's memory: numpy does not own it (no
        # copy into a numpy allocation); it is writable and C-contiguous.
        assert not a.flags.owndata and a.base is not None
        assert a.flags.c_contiguous and a.flags.writeable
        a[0, 0] = 1  # writable memory of its own


def test_the_gil_is_released_during_compress(tmp_path, monkeypatch):
    monkeypatch.setenv("VECTRO_TEST_SLOW_CHUNK_MS", "5")
    x = embeddings(20_000, 32)
    done_before = []
    finished = threading.Event()
    started = threading.Event()

    def progress(done, total):
        if 0 < done < total:
            started.set()

    def run():
        vectro.compress(x, tmp_path / "x.vectro", chunk_rows=100, threads=1, progress=progress)
        finished.set()

    t = threading.Thread(target=run)
    t.start()
    # This thread runs Python while the other is inside compress: after its first progress
    # report, before it returns.
    assert started.wait(60)
    n = 0
    while n < 100_000:
        n += 1
    done_before.append(finished.is_set())
    t.join()
    assert done_before == [False]
    assert len(vectro.open(tmp_path / "x.vectro")) == 20_000


def test_one_container_shared_by_threads(tmp_path):
    x = embeddings(5000, 48)
    vectro.compress(x, tmp_path / "x.vectro", codec="int4", chunk_rows=256, zstd=1)
    c = vectro.open(tmp_path / "x.vectro")
    want = vectro.decompress(tmp_path / "x.vectro")
    errors = []

    def reader(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(200):
                ids = rng.integers(0, len(c), 32)
                if not np.array_equal(c[ids], want[ids]):
                    errors.append(f"thread {seed}: rows differ")
                i = int(rng.integers(0, len(c) - 10))
                if not np.array_equal(c[i : i + 10], want[i : i + 10]):
                    errors.append(f"thread {seed}: range differs")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Closing while other threads read: reads in flight finish, later ones raise ValueError.
    c.close()
    with pytest.raises(ValueError):
        c[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_import_does_not_import_numpy_or_print(tmp_path):
    import subprocess
    import sys

    code = "import sys, vectro; print('numpy' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False" and r.stderr == ""
