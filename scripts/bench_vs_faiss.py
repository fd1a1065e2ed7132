"""Side-by-side PQ/OPQ benchmark of vectro against faiss on one .npy, in one run.

recall@10: 1000 seeded rows of the data as float queries; the truth is exact L2 search over
the original rows, the answer exact L2 search over each method's reconstruction.
Times are wall-clock on this machine in this run; compare ratios, not absolutes.

Environment: VECTRO_ONLY=1 skips faiss; ONLY="PQ48x8 OPQ96" keeps the named rows. SEEDS=11,12,13 runs every method once per seed
(vectro `seed=`, faiss `cp.seed` of the PQ k-means; faiss's OPQ rotation start is fixed) and
adds the means, with "all": recall@10 with every row as a query (files up to 20,000 rows),
which removes the query-sampling part of the noise. VECTRO_EXTRA=",redo=2" appends
parameters to vectro's codec strings. BENCH_CSV=path appends one CSV row per method (and
seed) to that file (bench_vs_faiss.sh sets it, with BENCH_STARTED and BENCH_HOST).
"""
import json, os, subprocess, sys, tempfile, time

import faiss
import numpy as np

DATA, VECTRO = sys.argv[1], sys.argv[2]
CONFIGS = [(48, False), (48, True), (96, False), (96, True)]
# ONLY="PQ48x8 PQ96x8" keeps the named configurations (faiss's OPQ is slow to repeat).
ONLY = os.environ.get("ONLY", "").split()
CONFIGS = [(m, o) for m, o in CONFIGS if not ONLY or (f"OPQ{m}" if o else f"PQ{m}x8") in ONLY]
x = np.ascontiguousarray(np.load(DATA).astype(np.float32))
n, d = x.shape
rng = np.random.default_rng(0)
q = x[rng.choice(n, min(1000, n), replace=False)]


def topk(base, k=10):
    idx = faiss.IndexFlatL2(d)
    idx.add(base)
    return idx.search(q, k)[1]


truth = topk(x)


def recall(recon):
    got = topk(np.ascontiguousarray(recon, dtype=np.float32))
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got)]))


SEEDS = [int(s) for s in os.environ.get("SEEDS", "").split(",") if s]
EXTRA = os.environ.get("VECTRO_EXTRA", "")
truth_all = None
if SEEDS and n <= 20000:
    flat = faiss.IndexFlatL2(d)
    flat.add(x)
    truth_all = flat.search(x, 10)[1]


def recall_all(recon):
    """recall@10 with every row as a query, or nan for big files."""
    if truth_all is None:
        return float("nan")
    idx = faiss.IndexFlatL2(d)
    idx.add(np.ascontiguousarray(recon, dtype=np.float32))
    got = idx.search(x, 10)[1]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth_all, got)]))


def run_faiss(m, opq, seed=None):
    key = f"OPQ{m}_{d},PQ{m}" if opq else f"PQ{m}"
    index = faiss.index_factory(d, key)
    if seed is not None:
        faiss.downcast_index(index.index if opq else index).pq.cp.seed = seed
    t = time.perf_counter(); index.train(x); train = time.perf_counter() - t
    t = time.perf_counter(); codes = index.sa_encode(x); enc = time.perf_counter() - t
    recon = index.sa_decode(codes)
    return dict(train=train, encode=enc, bytes=codes.shape[1], recall=recall(recon),
                all=recall_all(recon) if SEEDS else None)


def record(method, seed, r):
    """Appends one raw row to $BENCH_CSV, whose header bench_vs_faiss.sh wrote."""
    path = os.environ.get("BENCH_CSV")
    if not path:
        return
    row = [os.environ.get("BENCH_STARTED", ""), os.environ.get("BENCH_HOST", ""),
           os.path.basename(DATA), n, d, method, "" if seed is None else seed, r["bytes"],
           f"{r['recall']:.4f}", "" if r.get("all") is None else f"{r['all']:.4f}",
           f"{r['train']:.3f}", f"{r['encode']:.3f}"]
    with open(path, "a") as f:
        f.write(",".join(map(str, row)) + "\n")


def vectro(*args):
    """Wall time of one vectro command, process start and file output included."""
    t = time.perf_counter()
    subprocess.run([VECTRO, *args, "-q"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def run_vectro(m, opq, tmp, seed=None):
    codec = f"{'opq' if opq else 'pq'}:m={m}{EXTRA}" + ("" if seed is None else f",seed={seed}")
    vcb, out, npy = (os.path.join(tmp, f) for f in ("c.vcb", "c.vectro", "c.npy"))
    for f in (vcb, out, npy):
        if os.path.exists(f):
            os.remove(f)
    train = vectro("train", "--in", DATA, "--codec", codec, "--out", vcb)
    enc = vectro("compress", "--in", DATA, "--out", out, "--codebook", vcb, "--no-fsync")
    vectro("decompress", "--in", out, "--out", npy, "--no-fsync")
    info = json.loads(subprocess.run([VECTRO, "info", out, "--json"], check=True, capture_output=True).stdout)
    recon = np.load(npy)
    return dict(train=train, encode=enc, bytes=info["payload_bytes"] // n, recall=recall(recon),
                all=recall_all(recon) if SEEDS else None)


print(f"data {DATA}: {n} x {d}; faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}")
mb = x.nbytes / 1e6
skip_faiss = bool(os.environ.get("VECTRO_ONLY"))
if SEEDS:
    # One line per method and seed, then the means; "all" is recall@10 over every row.
    print(f"{'method':<14}{'seed':>6}{'bytes':>6}{'R@10':>8}{'all':>8}{'train s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for m, opq in CONFIGS:
            name = f"OPQ{m}" if opq else f"PQ{m}x8"
            for who in (("vectro",) if skip_faiss else ("faiss", "vectro")):
                rs = []
                for seed in SEEDS:
                    r = run_faiss(m, opq, seed) if who == "faiss" else run_vectro(m, opq, tmp, seed)
                    rs.append(r)
                    record(f"{who} {name}", seed, r)
                    print(f"{who + ' ' + name:<14}{seed:>6}{r['bytes']:>6}{r['recall']:>8.4f}"
                          f"{r['all']:>8.4f}{r['train']:>9.2f}")
                    sys.stdout.flush()
                mean = {k: float(np.mean([r[k] for r in rs])) for k in ("recall", "all", "train")}
                print(f"{who + ' ' + name:<14}{'mean':>6}{rs[0]['bytes']:>6}{mean['recall']:>8.4f}"
                      f"{mean['all']:>8.4f}{mean['train']:>9.2f}")
                sys.stdout.flush()
    sys.exit(0)
print(f"{'method':<12}{'bytes':>6}{'R@10':>8}{'train s':>9}{'enc MB/s':>10}{'train+enc s':>13}{'speedup':>9}")
with tempfile.TemporaryDirectory() as tmp:
    for m, opq in CONFIGS:
        # VECTRO_ONLY=1 skips faiss (its OPQ trains for many minutes on a loaded machine).
        f = None if skip_faiss else run_faiss(m, opq)
        v = run_vectro(m, opq, tmp)
        name = f"OPQ{m}" if opq else f"PQ{m}x8"
        for who, r in (("faiss", f), ("vectro", v)):
            if r is None:
                continue
            record(f"{who} {name}", None, r)
            tot = r["train"] + r["encode"]
            sp = f"{(f['train'] + f['encode']) / tot:>8.2f}x" if f else f"{'-':>9}"
            print(f"{who + ' ' + name:<12}{r['bytes']:>6}{r['recall']:>8.3f}{r['train']:>9.2f}"
                  f"{mb / r['encode']:>10.0f}{tot:>13.2f}{sp}")
        sys.stdout.flush()
