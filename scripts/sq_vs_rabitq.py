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
compare ratios, not absolutes. vectro's runs are also timed in CPU time (the children's user
+ system time, all threads, best of REPEATS), which a loaded machine disturbs less than wall
time.

`sq:bits=B,centre=1` centres the rows on the mean of a sample of them (as faiss's `train`
does) and is scored by its own estimator, which ranks as its decoded rows do (see
`src/codec/sq.rs`). At one bit it is padded by default (layout 3: the row's factors in one
word, the 4 bytes freed spent on 32 more sign bits over d + 32 rotated dims), and
`pad=0` is the unpadded layout 2 at the same bytes; the seed sweep runs both (and at more
bits, the default unpadded and `pad=1`), and with --extra E1,E2,... also
`sq:bits=B,centre=1,extra=E` (each centred row rotated with E zero coordinates, the row
`ceil((d + E) × B / 8) + 4` bytes).

faiss's `IndexRaBitQ` does not rotate (its quantizer expects the rotation to be done
outside), but it does centre: `train` stores the mean of the base rows, codes `o − c` and
keeps `‖o − c‖² − ‖o‖²` per row, so its 1-bit score estimates `<q − c, o − c>` and adds
the exact rest. The seed sweep (SEEDS > 0) runs the 1-bit codes again over SEEDS rotation
seeds on both sides, vectro's `sq:bits=1,seed=S` and faiss's `IndexRaBitQ` behind a
`RandomRotationMatrix` initialised with seed S (an `IndexPreTransform`, as the
`RR{d},RaBitQ` factory string builds it), and prints each side's mean and sample standard
deviation: one seed's difference is within the spread of the seeds.
"""
import argparse, csv, json, os, resource, subprocess, tempfile, time

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
ap.add_argument("--seeds", type=int, default=5)
ap.add_argument("--sweep-bits", default="1",
                help="widths of the rotation-seed sweep, comma-separated (default 1)")
ap.add_argument("--rounds", default="",
                help="rotation round counts for the seed sweep, comma-separated (default: "
                     "the codecs' default only)")
ap.add_argument("--extra", default="",
                help="comma-separated counts E: the seed sweep also runs `sq:bits=B,centre=1,extra=E` "
                     "(each centred row rotated with E zero coordinates)")
ap.add_argument("--main", type=int, default=1,
                help="0 skips the main table (every codec once, and faiss at each width)")
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


def child_cpu():
    """CPU seconds (user + system) of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def vectro_recall(codec):
    """Compresses the base with `codec` (best of REPEATS wall times, and of their CPU
    times) and evaluates it."""
    cmd = [args.vectro, "compress", "--in", base_npy, "--out", out, "--codec", codec,
           "--force", "--no-fsync", "-q", *thr]
    cpu = []

    def run():
        c = child_cpu()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        cpu.append(child_cpu() - c)

    secs = best_time(run)
    cpu_secs[codec] = min(cpu)
    info = json.loads(subprocess.run([args.vectro, "info", out, "--json"], check=True,
                                     capture_output=True).stdout)
    # No -q here: it silences --json's summary too.
    ev = json.loads(subprocess.run(
        [args.vectro, "eval", "--orig", base_npy, "--comp", out, "--queries", q_npy,
         "--metric", "ip", "--k", "10", "--rerank", "0", "--json", *thr],
        check=True, capture_output=True).stdout)
    r10 = next(r["recall"] for r in ev["recall"] if r["k"] == 10)
    return r10, info["payload_bytes"] / n, secs


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
cpu_secs = {}


def emit(who, name, bits, nbytes, r10, secs):
    mbps = n * d * 4 / secs / 1e6
    rows.append((who, name, bits, nbytes, r10, secs, mbps))
    print(f"| {who} | `{name}` | {bits} | {nbytes} | {r10:.4f} | {mbps:,.0f} |", flush=True)


print(f"{n} base rows x {d} dims (unit length), {len(q)} held-out queries; faiss {faiss.__version__}")
if args.main:
    print()
    print("| who | codec | bits/dim | bytes/row | recall@10 | encode MB/s of float32 |")
    print("|---|---|---|---|---|---|")
out = os.path.join(tmp, "c.vectro")
VECTRO_CODECS = [
    ("int8", 8), ("int4:rotate=1", 4), ("binary:rotate=1", 1),
    ("sq:bits=1", 1), ("sq:bits=2", 2), ("sq:bits=3", 3), ("sq:bits=4", 4),
    ("sq:bits=5", 5), ("sq:bits=6", 6), ("sq:bits=8", 8),
    ("sq:bits=1,centre=1", 1), ("sq:bits=1,centre=1,pad=0", 1), ("sq:bits=2,centre=1", 2), ("sq:bits=3,centre=1", 3),
    ("sq:bits=4,centre=1", 4),
]
for codec, bits in VECTRO_CODECS if args.main else []:
    r10, nbytes, secs = vectro_recall(codec)
    emit("vectro", codec, bits, round(nbytes, 1), r10, secs)

def main_tables():
    """The CPU-time table of the main runs, then faiss IndexRaBitQ (unrotated) at each width."""
    print()
    print("CPU time of the same `vectro compress` runs (user + system, all threads, best of "
          f"{args.repeats}): what a loaded machine's wall time hides")
    print()
    print("| codec | CPU ms | MB/s of float32 per CPU second | × int8's CPU time |")
    print("|---|---|---|---|")
    for codec, _ in VECTRO_CODECS:
        c = cpu_secs[codec]
        print(f"| `{codec}` | {c * 1e3:.0f} | {n * d * 4 / c / 1e6:,.0f} | "
              f"{c / cpu_secs['int8']:.2f} |", flush=True)
    print()
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


if args.threads:
    faiss.omp_set_num_threads(args.threads)
if args.main:
    main_tables()

rounds_sweep = [int(r) for r in args.rounds.split(",") if r]
for sweep_bits in [int(b) for b in args.sweep_bits.split(",") if b] if args.seeds > 0 else []:
    print()
    print(f"{sweep_bits} bit(s) over {args.seeds} rotation seeds (1 to {args.seeds}): "
          "recall@10, mean ± sd")
    print()
    print("| who | codec | bytes/row | recall@10 per seed | mean ± sd |")
    print("|---|---|---|---|---|")
    seeds = range(1, args.seeds + 1)
    # Codes, the factor word, and (centred, unpadded) the row's f32 <x, c>; padded, the
    # codes of d + 32/B rotated dims and one packed factor word.
    code = (d * sweep_bits + 7) // 8
    padded = ((d + 32 // sweep_bits) * sweep_bits + 7) // 8 + 4
    # The other centred layout: at one bit the unpadded one (`pad=0`, the default is
    # padded), at more bits the padded one (`pad=1`, the default is unpadded).
    alt = "pad=0" if sweep_bits == 1 else "pad=1"
    # (who, codec spelled with S for the seed, bytes/row); with --rounds, each vectro codec
    # once per rotation round count R (`,rounds=R`), the alternative layout left out, and the
    # rotated int4 (at 4 bits) and binary (at 1 bit) codecs beside sq.
    vectro_codecs = []
    for r in rounds_sweep or [None]:
        rr_ = f",rounds={r}" if r is not None else ""
        vectro_codecs += [
            ("vectro", f"sq:bits={sweep_bits}{rr_},seed=S", code + 4),
            ("vectro", f"sq:bits={sweep_bits},centre=1{rr_},seed=S",
             padded if sweep_bits == 1 else code + 8)]
        if r is None:
            vectro_codecs.append(("vectro", f"sq:bits={sweep_bits},centre=1,{alt},seed=S",
                                  code + 8 if sweep_bits == 1 else padded))
            for e in [int(e) for e in args.extra.split(",") if e]:
                vectro_codecs.append(("vectro", f"sq:bits={sweep_bits},centre=1,extra={e},seed=S",
                                      ((d + e) * sweep_bits + 7) // 8 + 4))
        elif sweep_bits == 4:
            vectro_codecs.append(("vectro", f"int4:rotate=1{rr_},seed=S", code + 4))
        elif sweep_bits == 1:
            vectro_codecs.append(("vectro", f"binary:rotate=1{rr_},seed=S", code + 4))
    sweep = {name: [] for _, name, _ in vectro_codecs}
    sweep["faiss"] = []
    faiss_bytes = 0
    for s in seeds:
        for _, name, _ in vectro_codecs:
            sweep[name].append(vectro_recall(name.replace("seed=S", f"seed={s}"))[0])
        rr = faiss.RandomRotationMatrix(d, d)
        rr.init(s)
        inner = faiss.IndexRaBitQ(d, faiss.METRIC_INNER_PRODUCT, sweep_bits)
        inner.qb = 0
        idx = faiss.IndexPreTransform(rr, inner)
        idx.train(base)
        idx.add(base)
        faiss_bytes = inner.code_size
        sweep["faiss"].append(recall(idx.search(q, 10)[1]))
    fname = f"RR,IndexRaBitQ nb_bits={sweep_bits} (seed S)"
    for who, name, nbytes in [*vectro_codecs, ("faiss", fname, faiss_bytes)]:
        r = np.array(sweep["faiss" if who == "faiss" else name])
        sd = r.std(ddof=1) if len(r) > 1 else 0.0
        per = ", ".join(f"{x:.4f}" for x in r)
        print(f"| {who} | `{name}` | {nbytes} | {per} | {r.mean():.4f} ± {sd:.4f} |", flush=True)
        for s, x in zip(seeds, r):
            rows.append((who, f"{name.replace('=S', '=' + str(s)).replace('seed S', 'seed ' + str(s))}",
                         sweep_bits, nbytes, x, float("nan"), float("nan")))

with open(args.csv, "a", newline="") as f:
    w = csv.writer(f)
    for r in rows:
        w.writerow([os.environ.get("BENCH_STARTED", ""), os.environ.get("BENCH_HOST", ""),
                    os.path.basename(args.npy), n, d, len(q), *r])
