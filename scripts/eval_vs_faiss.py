"""Times `vectro eval` against faiss and numpy on the same data, and checks its numbers.

Run through eval_vs_faiss.sh, which sets up the venv. Prints a table of medians over
--repeats runs, taken alternately so that machine load hits every contender alike.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import faiss
import numpy as np

K = (1, 10, 100)
RERANK = 100


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def unit(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1)


def flat_index(x):
    """Exact cosine search: IndexFlatIP over unit rows."""
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(unit(x))
    return index


def faiss_topk(x, q, k):
    return flat_index(x).search(unit(q), k)[1]


def timed_search(index, q, k):
    """Seconds of index.search alone: building the index is not counted."""
    qn = unit(q)
    t = time.perf_counter()
    index.search(qn, k)
    return time.perf_counter() - t


def numpy_topk(x, q, k, block=8192):
    """A plain blocked matmul with a running top-k, as a baseline."""
    qn = unit(q)
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for s in range(0, len(x), block):
        xb = unit(x[s:s + block])
        sc = qn @ xb.T
        ids = np.broadcast_to(np.arange(s, s + len(xb)), sc.shape)
        sc = np.concatenate([best_s, sc], axis=1)
        ids = np.concatenate([best_i, ids], axis=1)
        top = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(sc, top, 1)
        best_i = np.take_along_axis(ids, top, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


def reference(x, r, q):
    """Independent scorer: cosine stats with numpy in f64, recall from faiss."""
    x64, r64 = x.astype(np.float64), r.astype(np.float64)
    num = (x64 * r64).sum(1)
    den = np.linalg.norm(x64, axis=1) * np.linalg.norm(r64, axis=1)
    cos = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    truth = faiss_topk(x, q, max(K))
    found = faiss_topk(r, q, max(K + (RERANK,)))
    out = {"cosine_mean": cos.mean(), "cosine_min": cos.min(),
           "nmse": ((x64 - r64) ** 2).sum() / (x64 ** 2).sum()}
    qn = unit(q)
    for k in K:
        hits = [len(set(t[:k]) & set(f[:k])) / k for t, f in zip(truth, found)]
        out[f"recall@{k}"] = float(np.mean(hits))
        res = []
        for qi, (t, f) in enumerate(zip(truth, found)):
            c = f[:max(RERANK, k)]
            exact = unit(x[c]) @ qn[qi]
            top = c[np.argsort(-exact, kind="stable")[:k]]
            res.append(len(set(t[:k]) & set(top)) / k)
        out[f"rescored@{k}"] = float(np.mean(res))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectro", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--npy")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="threads for every contender; 0 = all")
    ap.add_argument("--csv", help="append raw rows (each timed run, each metric compared) to this CSV")
    a = ap.parse_args()
    if a.threads:
        faiss.omp_set_num_threads(a.threads)
    v, w = a.vectro, a.work
    npy = a.npy or os.path.join(w, "x.npy")
    if not a.npy:
        sh(v, "generate", "-q", "--rows", str(a.rows), "--dims", str(a.dims), "--out", npy)
    comp, back, qpath = (os.path.join(w, n) for n in ("x.vectro", "r.npy", "q.npy"))
    sh(v, "compress", "-q", "--no-fsync", "--in", npy, "--out", comp)
    sh(v, "decompress", "-q", "--no-fsync", "--in", comp, "--out", back)
    x = np.ascontiguousarray(np.load(npy), dtype=np.float32)
    r = np.ascontiguousarray(np.load(back), dtype=np.float32)
    rng = np.random.default_rng(7)
    q = x[np.sort(rng.choice(len(x), min(a.queries, len(x)), replace=False))]
    np.save(qpath, q)
    ks = ",".join(map(str, K))
    eval_cmd = [v, "eval", "-q", "--json", "--orig", npy, "--comp", comp, "--queries", qpath,
                "--k", ks, "--rerank", str(RERANK)] + (["--threads", str(a.threads)] if a.threads else [])

    # eval is timed as a whole process (reading, decoding, metrics, both searches, rescoring);
    # faiss only inside index.search, on indexes built beforehand.
    times = {"vectro eval (whole job)": [], "faiss IndexFlatIP, 1 search": [],
             "faiss IndexFlatIP, 2 searches (= eval's work)": [], "numpy blocked matmul, 1 search": []}
    report = None
    ix, ir = flat_index(x), flat_index(r)
    for _ in range(a.repeats):
        # Warm the page cache for every contender alike.
        subprocess.run(["cat", npy, comp], check=True, stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        report = json.loads(sh(*eval_cmd))
        times["vectro eval (whole job)"].append(time.perf_counter() - t)
        one = timed_search(ix, q, max(K))
        times["faiss IndexFlatIP, 1 search"].append(one)
        two = one + timed_search(ir, q, RERANK)
        times["faiss IndexFlatIP, 2 searches (= eval's work)"].append(two)
        t = time.perf_counter()
        numpy_topk(x, q, max(K))
        times["numpy blocked matmul, 1 search"].append(time.perf_counter() - t)

    n, d = x.shape
    print(f"{n} x {d}, {len(q)} queries, k = {ks}, median of {a.repeats} runs "
          f"(faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; numpy {np.__version__})")
    base = statistics.median(times["faiss IndexFlatIP, 2 searches (= eval's work)"])
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:<48} {m:8.3f} s   {m / base:5.2f}x")
    ref = reference(x, r, q)
    got = {"cosine_mean": report["cosine_mean"], "cosine_min": report["cosine_min"], "nmse": report["nmse"]}
    for rec in report["recall"]:
        got[f"recall@{rec['k']}"] = rec["recall"]
        got[f"rescored@{rec['k']}"] = rec["rescored"]
    print("  metric            vectro eval     independent (numpy f64 / faiss)")
    for key, want in ref.items():
        print(f"  {key:<16} {got[key]:14.8f}  {want:14.8f}   diff {abs(got[key] - want):.2e}")
    if a.csv:
        pre = [os.environ.get("BENCH_STARTED", ""), os.environ.get("BENCH_HOST", ""),
               os.path.basename(a.npy) if a.npy else "generated", n, d, len(q), a.threads or "all"]
        with open(a.csv, "a") as f:
            for name, ts in times.items():
                for i, t in enumerate(ts, 1):
                    f.write(",".join(map(str, pre + ["seconds", f'"{name}"', i, f"{t:.4f}", ""])) + "\n")
            for key, want in ref.items():
                f.write(",".join(map(str, pre + ["metric", key, "", repr(float(got[key])), repr(float(want))])) + "\n")
    print(f"  cosine p1/p5/median: {report['cosine_p1']:.7f} / {report['cosine_p5']:.7f} / "
          f"{report['cosine_median']:.7f}; ratio {report['ratio']:.3f}")


if __name__ == "__main__":
    main()
