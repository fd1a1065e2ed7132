#!/usr/bin/env python3
"""The Python package's performance, measured in one run (the ratios are what count):

1. int8 of a (1_000_000, 384) float32 array in memory: vectro.quantize_embeddings and
   vectro.compress (to a container file, no fsync) against the numpy reference
   (the int8 reference definition, restated below) and faiss
   ScalarQuantizer(QT_8bit).compute_codes (training excluded);
2. 100 random rows from an open container: Container[ids] against the library's own
   get_many on the same file, timed inside Rust (warm: every chunk touched first);
3. `import vectro` in a fresh interpreter.

Writes bench/runs/<YYYY-MM-DD>-<hostname -s>/bench_python.csv and prints a summary.

    scripts/test_python.sh -k nothing        # builds the wheel into target/py-venv
    target/py-venv/bin/pip install faiss-cpu  # optional: the faiss column
    target/py-venv/bin/python scripts/bench_python.py [--rows 1000000] [--dims 384] [--repeats 5]
"""

import argparse
import csv
import datetime
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import vectro

ROOT = pathlib.Path(__file__).resolve().parents[1]


def reference_quantize(v):
    # The int8 reference definition (the prototype's numpy), verbatim.
    v = np.asarray(v, dtype=np.float32)
    max_abs = np.abs(v).max(axis=1)
    scales = (max_abs / np.float32(127)).astype(np.float32)
    scales[max_abs == 0] = np.float32(1.0)
    q = np.rint(v / scales[:, None]).astype(np.int8)
    return q, scales


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fetches", type=int, default=2000, help="sets of 100 random ids")
    ap.add_argument("--dir", default=None, help="where the container goes (default: a temp dir)")
    a = ap.parse_args()

    rows_out = []

    def record(name, best, median, unit, note=""):
        rows_out.append(dict(measure=name, best=f"{best:.6g}", median=f"{median:.6g}", unit=unit, note=note))
        print(f"  {name:<44} best {best:10.4g} {unit:<3} median {median:10.4g} {unit} {note}")

    print(f"vectro {vectro.__version__}, numpy {np.__version__}, {os.cpu_count()} cores, host {socket.gethostname()}")
    rng = np.random.default_rng(42)
    x = rng.standard_normal((a.rows, a.dims), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mb = x.nbytes / 1e6
    print(f"int8 of a ({a.rows}, {a.dims}) float32 array ({mb:.0f} MB), best of {a.repeats}:")

    q, s = vectro.quantize_embeddings(x)
    rq, rs = reference_quantize(x)
    assert np.array_equal(q, rq) and np.array_equal(s, rs), "not bit-exact with the reference"
    del q, s, rq, rs

    t_ref = best_of(lambda: reference_quantize(x), max(1, a.repeats // 2))
    record("numpy reference quantize", *t_ref, "s")
    t_q = best_of(lambda: vectro.quantize_embeddings(x), a.repeats)
    record("vectro.quantize_embeddings", *t_q, "s")
    tmp = tempfile.TemporaryDirectory(prefix="vectro-bench-", dir=a.dir)
    out = pathlib.Path(tmp.name) / "x.vectro"
    t_c = best_of(lambda: vectro.compress(x, out, force=True, fsync=False), a.repeats)
    record("vectro.compress (array -> container file)", *t_c, "s")
    t_f = None
    try:
        import faiss

        sq = faiss.ScalarQuantizer(a.dims, faiss.ScalarQuantizer.QT_8bit)
        sq.train(x[: min(len(x), 100_000)])
        t_f = best_of(lambda: sq.compute_codes(x), a.repeats)
        record("faiss ScalarQuantizer(QT_8bit).compute_codes", *t_f, "s", f"faiss {faiss.__version__}")
    except ImportError:
        print("  faiss: not installed (pip install faiss-cpu), skipped")

    print("100 random rows from an open int8 container, warm:")
    c = vectro.open(out)
    _ = c[:]  # touch every chunk: checksums checked, pages in memory
    ids = rng.integers(0, a.rows, (a.fetches, 100), dtype=np.uint64)
    ids_py = ids.astype(np.int64)
    py_times = []
    for row in ids_py:
        t = time.perf_counter()
        c[row]
        py_times.append(time.perf_counter() - t)
    rust_times = vectro._vectro._time_get_many(str(out), ids)
    record("Container[ids] (Python)", min(py_times) * 1e6, statistics.median(py_times) * 1e6, "us")
    record("get_many (Rust, same file)", min(rust_times) * 1e6, statistics.median(rust_times) * 1e6, "us")
    c.close()

    print("import vectro, fresh interpreter:")
    imports = []
    for _ in range(a.repeats):
        r = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import vectro"], capture_output=True, text=True, check=True
        )
        # The cumulative microseconds of the top-level `vectro` line.
        line = [ln for ln in r.stderr.splitlines() if ln.rstrip().endswith("| vectro")][-1]
        imports.append(int(line.split("|")[1]) / 1e3)
    record("import vectro", min(imports), statistics.median(imports), "ms")

    print("ratios (median):")
    ratios = {
        "quantize_embeddings vs numpy reference": t_ref[1] / t_q[1],
        "compress vs numpy reference": t_ref[1] / t_c[1],
        "Container[ids] / get_many": statistics.median(py_times) / statistics.median(rust_times),
    }
    if t_f:
        ratios["quantize_embeddings vs faiss compute_codes"] = t_f[1] / t_q[1]
        ratios["compress vs faiss compute_codes"] = t_f[1] / t_c[1]
    for k, v in ratios.items():
        print(f"  {k:<44} {v:6.2f}x")
        rows_out.append(dict(measure=f"ratio: {k}", best="", median=f"{v:.4g}", unit="x", note=""))

    day = datetime.date.today().isoformat()
    host = socket.gethostname().split(".")[0]
    d = ROOT / "bench" / "runs" / f"{day}-{host}"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "bench_python.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["measure", "best", "median", "unit", "note"])
        w.writeheader()
        w.writerows(rows_out)
    print(f"wrote {d / 'bench_python.csv'}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
