"""vectro's additive codes (`rq:m=M`) beside faiss's RQ and LSQ and vectro's opq, in one run.

The data's rows are scaled to unit length, then split with a fixed seed into held-out queries
(QUERIES rows) and the base (every other row): no query is a base row. Every codec is trained
on the base and encodes it. recall@10 of the float queries against the compressed base rows,
exact search (no re-ranking), truth by exact inner product over the original base rows (numpy).
vectro's side is `vectro eval --queries --metric ip --rerank 0` (rq and opq: the search over
the decoded rows); faiss's is `IndexResidualQuantizer` / `IndexLocalSearchQuantizer(d, M, 8,
METRIC_INNER_PRODUCT)` with its default settings (RQ: beam 5; LSQ: its ICM defaults), native
search, which scores the decoded rows too. Bytes: vectro's payload bytes per row (`info`: the
codes and, for rq, its 2-byte scale), faiss's `code_size`.

Seconds: vectro `compress` wall time (one process: reading, sampling, training, encoding,
writing; --no-fsync) against faiss `train` + `add` in memory, on the same machine in the same
run. Compare ratios, not absolutes: the machine may be shared.
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
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--lsq32", type=int, default=1)
ap.add_argument("--vcodecs", default="rq:m=16;rq:m=32;opq:m=16;opq:m=32")  # ;-separated
ap.add_argument("--faiss", default="RQ16x8,LSQ16x8,RQ32x8,LSQ32x8")
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


rows = []


def emit(who, name, code_bytes, nbytes, r10, secs):
    rows.append((who, name, code_bytes, nbytes, r10, round(secs, 2)))
    print(f"| {who} | `{name}` | {code_bytes} | {nbytes} | {r10:.4f} | {secs:,.1f} |", flush=True)


print(f"{n} base rows x {d} dims (unit length), {len(q)} held-out queries; faiss {faiss.__version__}")
print()
print("| who | codec | code bytes | bytes/row | recall@10 | train + encode s |")
print("|---|---|---|---|---|---|")
out = os.path.join(tmp, "c.vectro")
for codec in [c for c in args.vcodecs.split(";") if c]:
    cmd = [args.vectro, "compress", "--in", base_npy, "--out", out, "--codec", codec,
           "--force", "--no-fsync", "-q", *thr]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    secs = time.perf_counter() - t
    info = json.loads(subprocess.run([args.vectro, "info", out, "--json"], check=True,
                                     capture_output=True).stdout)
    ev = json.loads(subprocess.run(
        [args.vectro, "eval", "--orig", base_npy, "--comp", out, "--queries", q_npy,
         "--metric", "ip", "--k", "10", "--rerank", "0", "--json", *thr],
        check=True, capture_output=True).stdout)
    r10 = next(r["recall"] for r in ev["recall"] if r["k"] == 10)
    m = int(codec.split("m=")[1].split(",")[0])
    emit("vectro", codec, m, round(info["payload_bytes"] / n, 1), r10, secs)

if args.threads:
    faiss.omp_set_num_threads(args.threads)
for name in [f for f in args.faiss.split(",") if f]:
    if name == "LSQ32x8" and not args.lsq32:
        continue
    m = int(name.lstrip("RLSQ").split("x")[0])  # RQ16x8, LSQ16x8: 16
    if name.startswith("RQ"):
        idx = faiss.IndexResidualQuantizer(d, m, 8, faiss.METRIC_INNER_PRODUCT)
    else:
        idx = faiss.IndexLocalSearchQuantizer(d, m, 8, faiss.METRIC_INNER_PRODUCT)
    t = time.perf_counter()
    idx.train(base)
    idx.add(base)
    secs = time.perf_counter() - t
    ids = idx.search(q, 10)[1]
    emit("faiss", name, m, idx.code_size, recall(ids), secs)

with open(args.csv, "a", newline="") as f:
    w = csv.writer(f)
    for r in rows:
        w.writerow([os.environ.get("BENCH_STARTED", ""), os.environ.get("BENCH_HOST", ""),
                    os.path.basename(args.npy), n, d, len(q), *r])
