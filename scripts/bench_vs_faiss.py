"""Side-by-side PQ/OPQ benchmark of vectro against faiss on one .npy, in one run.

recall@10: 1000 seeded rows of the data as float queries; the truth is exact L2 search over
the original rows, the answer exact L2 search over each method's reconstruction.
Times are wall-clock on this machine in this run; compare ratios, not absolutes.
"""
import json, os, subprocess, sys, tempfile, time

import faiss
import numpy as np

DATA, VECTRO = sys.argv[1], sys.argv[2]
CONFIGS = [(48, False), (48, True), (96, False), (96, True)]
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


def run_faiss(m, opq):
    key = f"OPQ{m}_{d},PQ{m}" if opq else f"PQ{m}"
    index = faiss.index_factory(d, key)
    t = time.perf_counter(); index.train(x); train = time.perf_counter() - t
    t = time.perf_counter(); codes = index.sa_encode(x); enc = time.perf_counter() - t
    return dict(train=train, encode=enc, bytes=codes.shape[1], recall=recall(index.sa_decode(codes)))


def vectro(*args):
    """Wall time of one vectro command, process start and file output included."""
    t = time.perf_counter()
    subprocess.run([VECTRO, *args, "-q"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def run_vectro(m, opq, tmp):
    codec = f"{'opq' if opq else 'pq'}:m={m}"
    vcb, out, npy = (os.path.join(tmp, f) for f in ("c.vcb", "c.vectro", "c.npy"))
    for f in (vcb, out, npy):
        if os.path.exists(f):
            os.remove(f)
    train = vectro("train", "--in", DATA, "--codec", codec, "--out", vcb)
    enc = vectro("compress", "--in", DATA, "--out", out, "--codebook", vcb, "--no-fsync")
    vectro("decompress", "--in", out, "--out", npy, "--no-fsync")
    info = json.loads(subprocess.run([VECTRO, "info", out, "--json"], check=True, capture_output=True).stdout)
    return dict(train=train, encode=enc, bytes=info["payload_bytes"] // n, recall=recall(np.load(npy)))


print(f"data {DATA}: {n} x {d}; faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}")
print(f"{'method':<12}{'bytes':>6}{'R@10':>8}{'train s':>9}{'enc MB/s':>10}{'train+enc s':>13}{'speedup':>9}")
mb = x.nbytes / 1e6
with tempfile.TemporaryDirectory() as tmp:
    for m, opq in CONFIGS:
        # VECTRO_ONLY=1 skips faiss (its OPQ trains for many minutes on a loaded machine).
        f = None if os.environ.get("VECTRO_ONLY") else run_faiss(m, opq)
        v = run_vectro(m, opq, tmp)
        name = f"OPQ{m}" if opq else f"PQ{m}x8"
        for who, r in (("faiss", f), ("vectro", v)):
            if r is None:
                continue
            tot = r["train"] + r["encode"]
            sp = f"{(f['train'] + f['encode']) / tot:>8.2f}x" if f else f"{'-':>9}"
            print(f"{who + ' ' + name:<12}{r['bytes']:>6}{r['recall']:>8.3f}{r['train']:>9.2f}"
                  f"{mb / r['encode']:>10.0f}{tot:>13.2f}{sp}")
        sys.stdout.flush()
