"""vectro's rotated scalar family (`sq:bits=B`, plus int8/int4/binary) beside faiss RaBitQ, in one run.

The data's rows are scaled to unit length (RaBitQ's published setting: inner product on unit
rows, where it equals cosine), then split with a fixed seed into held-out queries (QUERIES rows)
and the base (every other row): no query is a base row. recall@10 of the float queries
against the compressed base rows, exact search (no re-ranking), truth by exact inner product
over the original base rows (numpy). vectro's side is `vectro eval --queries --metric ip`, which
scores the codes with each codec's estimator; faiss's is `IndexRaBitQ(d, METRIC_INNER_PRODUCT,
nb_bits)` with float queries (`qb = 0`), native search. Bytes are per row: vectro's payload
bytes (`info`), faiss's `code_size`.

Encode time: `vectro compress` wall time (process start, reading, checksums and the output
included, --no-fsync; the best of REPEATS runs) and faiss `train` + `add` (in memory; one
run, as multi-bit RaBitQ encodes at a few MB/s), on the same machine in the same run:
compare ratios, not absolutes.
"""
import argparse, csv, json, os, subprocess, tempfile, time

import faiss
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--npy", required=True)
ap.add_argument("--vectro", required=True)
ap.add_argument("--csv", required=True)
ap.add_argument("--queries", type=int, default=1000)
ap.add_argument("--seed", type=int, default=2024)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--threads", type=int, default=0)
args = ap.parse_args()

x = np.load(args.npy).astype(np.float32)
x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
perm = np.random.default_rng(args.seed).permutation(len(x))
q = np.ascontiguousarray(x[perm[: args.queries]])
base = np.ascontiguousarray(x[np.sort(perm[args.queries :])])
n, d = base.shape
truth = np.argsort(-(q @ base.T), axis=1, kind="stable")[:, :10]
tmp = tempfile.mkdtemp()
base_npy, q_npy = os.path.join(tmp, "base.npy"), os.path.join(tmp, "queries.npy")
np.save(base_npy, base)
np.save(q_npy, q)
thr = ["--threads", str(args.threads)] if args.threads else []


def recall(ids):
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, ids)]))


def best_time(fn, repeats=None):
    ts = []
    for _ in range(repeats or args.repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


rows = []


def emit(who, name, bits, nbytes, r10, secs):
    mbps = n * d * 4 / secs / 1e6
    rows.append((who, name, bits, nbytes, r10, secs, mbps))
    print(f"| {who} | `{name}` | {bits} | {nbytes} | {r10:.4f} | {mbps:,.0f} |", flush=True)


print(f"{n} base rows x {d} dims (unit length), {len(q)} held-out queries; faiss {faiss.__version__}")
print()
print("| who | codec | bits/dim | bytes/row | recall@10 | encode MB/s of float32 |")
print("|---|---|---|---|---|---|")
out = os.path.join(tmp, "c.vectro")
VECTRO_CODECS = [
    ("int8", 8), ("int4:rotate=1", 4), ("binary:rotate=1", 1),
    ("sq:bits=1", 1), ("sq:bits=2", 2), ("sq:bits=3", 3), ("sq:bits=4", 4),
    ("sq:bits=5", 5), ("sq:bits=6", 6), ("sq:bits=8", 8),
]
for codec, bits in VECTRO_CODECS:
    cmd = [args.vectro, "compress", "--in", base_npy, "--out", out, "--codec", codec,
           "--force", "--no-fsync", "-q", *thr]
    secs = best_time(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL))
    info = json.loads(subprocess.run([args.vectro, "info", out, "--json"], check=True,
                                     capture_output=True).stdout)
    ev = json.loads(subprocess.run(
        [args.vectro, "eval", "--orig", base_npy, "--comp", out, "--queries", q_npy,
         "--metric", "ip", "--k", "10", "--rerank", "0", "--json", "-q", *thr],
        check=True, capture_output=True).stdout)
    r10 = next(r["recall"] for r in ev["recall"] if r["k"] == 10)
    nbytes = info["payload_bytes"] / n
    emit("vectro", codec, bits, round(nbytes, 1), r10, secs)

if args.threads:
    faiss.omp_set_num_threads(args.threads)
for bits in (1, 2, 3, 4, 5, 6, 8):
    idx = faiss.IndexRaBitQ(d, faiss.METRIC_INNER_PRODUCT, bits)
    idx.qb = 0

    def build():
        idx.reset()
        idx.train(base)
        idx.add(base)

    secs = best_time(build, 1)  # multi-bit RaBitQ encodes at a few MB/s: one run
    params = faiss.RaBitQSearchParameters()
    params.qb = 0
    ids = idx.search(q, 10, params=params)[1]
    emit("faiss", f"IndexRaBitQ nb_bits={bits}", bits, idx.code_size, recall(ids), secs)

with open(args.csv, "a", newline="") as f:
    w = csv.writer(f)
    for r in rows:
        w.writerow([os.environ.get("BENCH_STARTED", ""), os.environ.get("BENCH_HOST", ""),
                    os.path.basename(args.npy), n, d, len(q), *r])
