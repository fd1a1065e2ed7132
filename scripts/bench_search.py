#!/usr/bin/env python3
"""vectro search against faiss, on the same rows and held-out queries, in one run.

1. binary codes + int8 rescoring of the top 100 (the Hugging Face quantized-retrieval
   recipe): vectro `Container.search(hamming=True, rescore=100, rescore_with=int8)` and
   the asymmetric variant (float query against the sign bits, no Hamming), against faiss
   `IndexBinaryFlat` (Hamming) followed by numpy rescoring of its top 100 with int8
   embeddings (sentence-transformers' per-dimension ranges, float query · int8 codes, as
   the recipe does);
2. pq m=48 nbits=8 lookup scan: vectro on a `pq:m=48` container against faiss `IndexPQ`
   (both trained on the base; training excluded from the timing), l2 on unit rows.
3. pq m=96 nbits=4 fast-scan: vectro on a `pq:m=96,nbits=4` container (8-bit tables in
   registers, exact re-scoring of the rows the quantized bound cannot rule out) against
   faiss `IndexPQFastScan` (M=96, nbits=4, bbs=32; its quantized distances as they are),
   l2 on unit rows; then vectro with `fast_scan_candidates` R (float re-scoring of each
   chunk's best R rows by the 8-bit scan), and a plain-codebook container
   (`unit=0`: the tables' sums alone, as faiss scores, where the default unit-length
   codebook also divides by each row's decoded length), each vectro row timed beside a
   faiss row (`--only pq4` runs this alone; `--only pq4 --rows N` runs it on N rows
   synthesised from the real base rows as `--rows` does for the binary recipe (see
   scale_run and pq4_scale: same base, same held-out real queries, truth by exact float
   search, both cached in target/bench_search/), where the scan rather than the
   per-query setup dominates).
4. rq m=16 and m=32 (residual codes, `--only rq` runs this alone): vectro's lookup-table
   search on the codes against decoding every row (`Container[:]`) and one numpy matrix
   multiply, and pq at the same code bytes (m=16, m=32) searched by its lookup tables;
   cosine on unit rows. rq trains on RQ_TRAIN_ROWS rows (its training time is printed).

recall@10 is against exact float search over the same base (cosine = l2 order on unit
rows). QPS is queries / best-of-N wall time, 2 threads each side (faiss through OpenMP,
vectro through --threads). Writes bench/runs/<date>-<host>/bench_search.csv.

    scripts/bench_search.sh [DATA.npy] [--generated-rows N]
    scripts/bench_search.sh --only pq4 --rows 100000
"""

import argparse
import csv
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import faiss
import numpy as np

import vectro

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "lib"))
import peak_memory  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
THREADS = 2
K = 10
RESCORE = 100


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def truth(base, q, k):
    s = q @ base.T
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def recall(found, want):
    k = want.shape[1]
    return float(np.mean([len(set(f[:k]) & set(w)) / k for f, w in zip(found, want)]))


def best(fn, repeats):
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times)


def tier_files(name, base, q, tmp):
    """The tiered binary:rotate=1 + int8 file, and the same two codecs as two files, each
    searched once (every chunk's checksum checked, as a server would)."""
    paths = [tmp / f"{name}.{s}.vectro" for s in ("tiers", "binrot", "int8t")]
    for p in paths:
        if p.exists():
            p.unlink()
    vectro.compress(base, paths[0], codec="binary:rotate=1", rescore="int8", threads=THREADS)
    vectro.compress(base, paths[1], codec="binary:rotate=1", threads=THREADS)
    vectro.compress(base, paths[2], codec="int8", threads=THREADS)
    files = [vectro.Container(p) for p in paths]
    for c in files:
        c.search(q[:1], K)
    return files, paths


def tier_rows(name, base, q, repeats, tmp, record):
    """Tiers (format 1.6): one binary:rotate=1 + int8 file beside the two-container recipe
    of the same codecs, each re-ranking the best 100 with int8."""
    n, d = base.shape
    (tiered, coarse, fine), paths = tier_files(name, base, q, tmp)
    (ids, _), t = best(lambda: tiered.search(q, K, metric="cos", rescore=RESCORE, threads=THREADS), repeats)
    v_t = record("vectro tiered binary:rotate=1+int8 file, rescore 100", ids, t, d // 8 + 4 + d + 4)
    (ids, _), t = best(lambda: coarse.search(q, K, metric="cos", rescore=RESCORE, rescore_with=fine,
                                            threads=THREADS), repeats)
    v_two = record("vectro binary:rotate=1 + int8 (two files), rescore 100", ids, t, d // 8 + 4 + d + 4)
    (ids, _), t = best(lambda: tiered.search(q, K, metric="cos", hamming=True, rescore=RESCORE,
                                             threads=THREADS), repeats)
    record("vectro tiered file, hamming + rescore 100", ids, t, d // 8 + 4 + d + 4)
    for p in paths:
        p.unlink()
    return v_t, v_two


DEPTHS = (100, 200, 300, 500, 1000, 2000, 3000)
TARGET = 0.99
# Queries per numpy rescoring step of the faiss recipe (keeps the gathered int8 rows of a
# block in cache-sized pieces instead of queries x N x d floats at once).
NP_BLOCK = 64
BINARY_ONLY = False


def binary_sweep(name, base, q, want, repeats, tmp, record, depths):
    """The rescoring depth N each binary + int8 recipe needs for rescored recall@10 >= 0.99,
    and its throughput there: vectro Hamming + int8 (a tiered binary:rotate=1+int8 file, and
    the two files), faiss IndexBinaryFlat + numpy int8 rescoring on the sign bits of the rows
    as they are and on the sign bits of the rows under a seeded random orthogonal rotation
    (the kind of rotation vectro's rotate=1 applies, so faiss searches codes as good as
    vectro's); each faiss recipe rescoring with the recipe's per-dimension int8, and with
    vectro's per-row int8 (the same rescoring as vectro's, in numpy). Each method stops at
    the first N reaching the target."""
    n, d = base.shape
    (tiered, coarse, fine), paths = tier_files(f"{name}.sweep", base, q, tmp)

    lo, hi = base.min(0), base.max(0)
    step = (hi - lo) / 255
    int8 = np.clip(np.round((base - lo) / step - 128), -128, 127).astype(np.int8)
    rot, _ = np.linalg.qr(np.random.default_rng(7).standard_normal((d, d)))
    rot = rot.astype(np.float32)

    # vectro's int8 (a scale per row, max|x|/127), for a numpy rescoring identical to
    # vectro's: cosine against the decoded row s*c, its norm s*|c| precomputed per row.
    row_scale = np.maximum(np.abs(base).max(1), 1e-30) / 127
    row_int8 = np.clip(np.rint(base / row_scale[:, None]), -127, 127).astype(np.int8)
    row_mul = (1 / np.linalg.norm(row_int8.astype(np.float32), axis=1)).astype(np.float32)

    def faiss_recipe(rotate, per_row=False):
        index = faiss.IndexBinaryFlat(d)
        index.add(np.packbits((base @ rot if rotate else base) > 0, axis=1))
        codes = row_int8 if per_row else int8

        def run(depth):
            def go():
                qb = np.packbits((q @ rot if rotate else q) > 0, axis=1)
                _, cand = index.search(qb, depth)
                out = np.empty((len(q), K), dtype=np.int64)
                for a in range(0, len(q), NP_BLOCK):
                    c = cand[a:a + NP_BLOCK]
                    scores = np.einsum("qd,qcd->qc", q[a:a + NP_BLOCK], codes[c].astype(np.float32))
                    if per_row:
                        scores *= row_mul[c]  # cos(q, s*c) = q.c / |c|
                    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
                    out[a:a + NP_BLOCK] = np.take_along_axis(c, order, 1)
                return out
            return go
        return run

    bpr = d // 8 + 4 + d + 4
    methods = [
        ("vectro tiered binary:rotate=1+int8 file, hamming", bpr,
         lambda depth: lambda: tiered.search(q, K, metric="cos", hamming=True, rescore=depth,
                                             threads=THREADS)[0]),
        ("vectro binary:rotate=1 + int8 (two files), hamming", bpr,
         lambda depth: lambda: coarse.search(q, K, metric="cos", hamming=True, rescore=depth,
                                             rescore_with=fine, threads=THREADS)[0]),
        ("faiss IndexBinaryFlat + numpy int8, sign bits", d // 8 + d, faiss_recipe(False)),
        ("faiss IndexBinaryFlat + numpy int8, rotated sign bits", d // 8 + d, faiss_recipe(True)),
        ("faiss IndexBinaryFlat + numpy per-row int8 (vectro's), sign bits", d // 8 + d + 4,
         faiss_recipe(False, True)),
        ("faiss IndexBinaryFlat + numpy per-row int8 (vectro's), rotated sign bits", d // 8 + d + 4,
         faiss_recipe(True, True)),
    ]
    print(f"  rescoring depth for recall@10 >= {TARGET} (each method stops at the first N reaching it):")
    reached = {}
    for method, bytes_per_row, make in methods:
        for depth in depths:
            ids, t = best(make(depth), repeats)
            qps = record(f"{method}, rescore {depth}", ids, t, bytes_per_row, note=f"sweep N={depth}")
            if recall(ids, want) >= TARGET:
                reached[method] = (depth, qps)
                break
    for p in paths:
        p.unlink()
    print(f"  at recall@10 >= {TARGET}:")
    for method, _, _ in methods:
        depth, qps = reached.get(method, (None, None))
        print(f"    {method:<72} " + (f"N={depth:<5} {qps:10.1f} q/s" if depth else "not reached"))
    faiss_best = max((v for m, v in reached.items() if m.startswith("faiss")), key=lambda v: v[1], default=None)
    for method, _, _ in methods[:2]:
        if method in reached and faiss_best:
            print(f"    ratio {method} / fastest faiss recipe: {reached[method][1] / faiss_best[1]:.2f}x")
    return reached


def recorder(name, base, q, want, rows_out):
    """`record(method, ids, secs, bytes_per_row, note)`: prints a row, appends it to the CSV
    and returns its queries a second."""
    (n, d), nq = base.shape, len(q)

    def record(method, ids, secs, bytes_per_row, note=""):
        r = recall(ids, want)
        qps = nq / secs
        rows_out(dict(data=name, rows=n, dims=d, queries=nq, method=method,
                      recall10=f"{r:.4f}", qps=f"{qps:.1f}", seconds=f"{secs:.4f}",
                      bytes_per_row=bytes_per_row, note=note))
        print(f"  {method:<46} recall@10 {r:.4f}   {qps:10.1f} q/s   {bytes_per_row:>4} B/row {note}")
        return qps

    return record


def run_set(name, base, q, repeats, tmp, rows_out, depths=DEPTHS):
    n, d = base.shape
    nq = len(q)
    print(f"\n{name}: {n} rows x {d} dims, {nq} held-out queries, {THREADS} threads, best of {repeats}")
    want = truth(base, q, K)
    faiss.omp_set_num_threads(THREADS)

    record = recorder(name, base, q, want, rows_out)

    # ---- binary + int8 rescoring -------------------------------------------------------
    b_path, i_path, p_path = tmp / f"{name}.bin.vectro", tmp / f"{name}.int8.vectro", tmp / f"{name}.pq.vectro"
    for p in (b_path, i_path, p_path):
        if p.exists():
            p.unlink()
    vectro.compress(base, b_path, codec="binary", threads=THREADS)
    vectro.compress(base, i_path, codec="int8", threads=THREADS)
    coarse, fine = vectro.Container(b_path), vectro.Container(i_path)
    coarse.search(q[:1], K)  # touch every chunk once (checksums), as a server would
    fine.get_many(np.arange(0, n, max(1, n // 64)))

    (ids, _), t = best(lambda: coarse.search(q, K, metric="cos", hamming=True, rescore=RESCORE,
                                            rescore_with=fine, threads=THREADS), repeats)
    v_ham = record("vectro binary hamming + int8 rescore 100", ids, t, d // 8 + 4 + d + 4)
    (ids, _), t = best(lambda: coarse.search(q, K, metric="cos", rescore=RESCORE,
                                            rescore_with=fine, threads=THREADS), repeats)
    record("vectro binary float-query + int8 rescore 100", ids, t, d // 8 + 4 + d + 4)
    (ids, _), t = best(lambda: coarse.search(q, K, metric="cos", hamming=True, threads=THREADS), repeats)
    record("vectro binary hamming, no rescoring", ids, t, d // 8 + 4)

    index = faiss.IndexBinaryFlat(d)
    index.add(np.packbits(base > 0, axis=1))
    lo, hi = base.min(0), base.max(0)
    step = (hi - lo) / 255
    int8 = np.clip(np.round((base - lo) / step - 128), -128, 127).astype(np.int8)

    def faiss_binary():
        _, cand = index.search(np.packbits(q > 0, axis=1), RESCORE)
        scores = np.einsum("qd,qcd->qc", q, int8[cand].astype(np.float32))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
        return np.take_along_axis(cand, order, 1)

    ids, t = best(faiss_binary, repeats)
    f_ham = record("faiss IndexBinaryFlat + numpy int8 rescore 100", ids, t, d // 8 + d)
    v_t, v_two = tier_rows(name, base, q, repeats, tmp, record)
    print(f"  throughput ratio tiered file / two files {v_t / v_two:.2f}x, tiered / faiss {v_t / f_ham:.2f}x")
    binary_sweep(name, base, q, want, repeats, tmp, record, depths)
    if BINARY_ONLY:
        return

    # ---- pq m=48 nbits=8 -----------------------------------------------------------------
    vectro.compress(base, p_path, codec="pq:m=48", threads=THREADS)
    pq = vectro.Container(p_path)
    pq.search(q[:1], K)
    (ids, _), t = best(lambda: pq.search(q, K, metric="l2", threads=THREADS), repeats)
    v_pq = record("vectro pq m=48 nbits=8 (lookup scan)", ids, t, 48)
    ipq = faiss.IndexPQ(d, 48, 8)
    # Trained on a sample of at most 65,536 rows, as vectro trains by default.
    sample = np.random.default_rng(1).permutation(n)[:65_536]
    ipq.train(np.ascontiguousarray(base[sample]))
    ipq.add(base)
    (_, ids), t = best(lambda: ipq.search(q, K), repeats)
    f_pq = record("faiss IndexPQ m=48 nbits=8", ids, t, 48)
    print(f"  throughput ratio vectro/faiss: binary+rescore {v_ham / f_ham:.2f}x, pq {v_pq / f_pq:.2f}x")
    pq4_fastscan(name, base, q, repeats, tmp, record, want)
    rq_search(name, base, q, repeats, tmp, record)
    for p in (b_path, i_path, p_path):
        p.unlink()


def pq4_fastscan(name, base, q, repeats, tmp, record, want):
    """pq m=96 nbits=4: vectro's fast-scan against faiss IndexPQFastScan, same run."""
    n, d = base.shape
    m = 96 if d % 96 == 0 else 48
    path = tmp / f"{name}.pq4.vectro"
    if path.exists():
        path.unlink()
    t = time.perf_counter()
    vectro.compress(base, path, codec=f"pq:m={m},nbits=4", threads=THREADS)
    print(f"  (vectro pq m={m} nbits=4 trained and encoded in {time.perf_counter() - t:.1f} s)")
    pq4 = vectro.Container(path)
    pq4.search(q[:1], K)
    sample = np.random.default_rng(1).permutation(n)[:65_536]
    fs = faiss.IndexPQFastScan(d, m, 4, faiss.METRIC_L2, 32)
    fs.train(np.ascontiguousarray(base[sample]))
    fs.add(base)
    # Interleaved, so that both sides see the same load: exact, then the opt-in
    # fast_scan_candidates R (float re-scoring of each chunk's best R by the 8-bit scan).
    rows = []
    for cands in (0, *PQ4_CANDIDATES):
        label = "exact" if cands == 0 else f"{cands} candidates"
        (ids, _), t = best(lambda: pq4.search(q, K, metric="l2", threads=THREADS,
                                              fast_scan_candidates=cands), repeats)
        rows.append((record(f"vectro pq m={m} nbits=4 (fast-scan, {label})", ids, t, m // 2),
                     recall(ids, want), label))
        (_, ids), t = best(lambda: fs.search(q, K), repeats)
        f = record(f"faiss IndexPQFastScan M={m} nbits=4", ids, t, m // 2, note=f"beside {label}")
        print(f"  throughput ratio vectro ({label}) / faiss: {rows[-1][0] / f:.2f}x"
              f" at recall@10 {rows[-1][1]:.4f} vs {recall(ids, want):.4f}")
    path.unlink()
    # Like for like: a plain codebook (unit=0) sums the tables alone, as faiss does; the
    # unit-length codebook above also divides each row's score by its decoded length.
    plain = tmp / f"{name}.pq4plain.vectro"
    if plain.exists():
        plain.unlink()
    vectro.compress(base, plain, codec=f"pq:m={m},nbits=4,unit=0", threads=THREADS)
    pq4p = vectro.Container(plain)
    pq4p.search(q[:1], K)
    (ids, _), t = best(lambda: pq4p.search(q, K, metric="l2", threads=THREADS), repeats)
    v = record(f"vectro pq m={m} nbits=4 unit=0 (fast-scan, exact)", ids, t, m // 2)
    vr = recall(ids, want)
    (_, ids), t = best(lambda: fs.search(q, K), repeats)
    f = record(f"faiss IndexPQFastScan M={m} nbits=4", ids, t, m // 2, note="beside unit=0")
    print(f"  throughput ratio vectro (unit=0, exact) / faiss: {v / f:.2f}x"
          f" at recall@10 {vr:.4f} vs {recall(ids, want):.4f}")
    plain.unlink()


PQ4_CANDIDATES = (10, 40)


def pq4_only(name, base, q, repeats, tmp, rows_out):
    """`--only pq4`: the pq m=96 nbits=4 fast-scan comparison alone."""
    n, d = base.shape
    print(f"\n{name}: {n} rows x {d} dims, {len(q)} held-out queries, {THREADS} threads, best of {repeats}")
    want = truth(base, q, K)
    faiss.omp_set_num_threads(THREADS)
    pq4_fastscan(name, base, q, repeats, tmp, recorder(name, base, q, want, rows_out), want)


def pq4_scale(name, real, q, rows, repeats, tmp, rows_out):
    """`--only pq4 --rows N`: the pq4 comparison on the synthetic base of scale_run."""
    CACHE.mkdir(parents=True, exist_ok=True)
    n, d = real.shape
    tag = f"{name}-synth{rows}-mix{SYNTH_MIX}-noise{SYNTH_NOISE}-seed{SYNTH_SEED}"
    t = time.perf_counter()
    base = np.ascontiguousarray(synth_base(real, rows, CACHE / f"{tag}.npy"))
    want = exact_top(base, q, K, CACHE / f"{tag}.q{len(q)}.top{K}.npy")
    print(f"\n{name} synthesised to {rows} rows x {d} dims ({n} real base rows, the rest made from "
          f"them: mixture weights < {SYNTH_MIX}, noise {SYNTH_NOISE} x per-dimension spread); "
          f"{len(q)} held-out real queries, {THREADS} threads, best of {repeats}; base and exact "
          f"top-{K} ready in {time.perf_counter() - t:.1f} s (cached in {CACHE.relative_to(ROOT)})")
    faiss.omp_set_num_threads(THREADS)
    name = f"{name}-synth{rows}"
    pq4_fastscan(name, base, q, repeats, tmp, recorder(name, base, q, want, rows_out), want)


RQ_TRAIN_ROWS = 4000


def rq_search(name, base, q, repeats, tmp, record):
    """rq m=16/32: lookup tables on the codes vs decode + matrix multiply, and pq at equal
    code bytes by its lookup tables, same run."""
    n, d = base.shape
    for m in (16, 32):
        r_path, p_path = tmp / f"{name}.rq{m}.vectro", tmp / f"{name}.pq{m}.vectro"
        for p in (r_path, p_path):
            if p.exists():
                p.unlink()
        t = time.perf_counter()
        vectro.compress(base, r_path, codec=f"rq:m={m}", train_rows=RQ_TRAIN_ROWS, threads=THREADS)
        print(f"  (vectro rq m={m} trained on {RQ_TRAIN_ROWS} rows and encoded in {time.perf_counter() - t:.1f} s)")
        rq = vectro.Container(r_path)
        rq.search(q[:1], K)  # touch every chunk once (checksums), as a server would
        (ids, _), t = best(lambda: rq.search(q, K, metric="cos", threads=THREADS), repeats)
        v_lut = record(f"vectro rq m={m} (lookup tables)", ids, t, m + 2)

        def decode_then_matmul():
            x = rq[:]
            s = q @ x.T / np.maximum(np.linalg.norm(x, axis=1), 1e-30)
            top = np.argpartition(-s, K, axis=1)[:, :K]
            return np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1), 1)

        ids, t = best(decode_then_matmul, repeats)
        v_dec = record(f"rq m={m} decoded (Container[:]) + numpy matmul", ids, t, m + 2)
        vectro.compress(base, p_path, codec=f"pq:m={m}", threads=THREADS)
        pq = vectro.Container(p_path)
        pq.search(q[:1], K)
        (ids, _), t = best(lambda: pq.search(q, K, metric="cos", threads=THREADS), repeats)
        v_pq = record(f"vectro pq m={m} nbits=8 (lookup tables)", ids, t, m)
        print(f"  throughput ratio rq m={m}: lookup / decode {v_lut / v_dec:.2f}x, rq / pq {v_lut / v_pq:.2f}x")
        for p in (r_path, p_path):
            p.unlink()


def rq_only(name, base, q, repeats, tmp, rows_out):
    """`--only rq`: the rq comparison alone, recorded as run_set records."""
    n, d = base.shape
    nq = len(q)
    print(f"\n{name}: {n} rows x {d} dims, {nq} held-out queries, {THREADS} threads, best of {repeats}")
    want = truth(base, q, K)

    record = recorder(name, base, q, want, rows_out)

    rq_search(name, base, q, repeats, tmp, record)


# ---- --rows N: the binary + int8 recipe at a scale the real sample does not have --------
# Synthetic base (docs/benchmarks.md, "Search at 1M rows"): the real base rows as they are,
# then rows made from them: row i is real row (i mod n) plus a random mixture of two other
# real rows (weights uniform in [0, SYNTH_MIX)) plus Gaussian noise of SYNTH_NOISE times the
# real rows' per-dimension standard deviation, renormalised. The held-out queries never
# make a base row. Base and exact top-k are cached in target/bench_search/.
SYNTH_MIX, SYNTH_NOISE, SYNTH_SEED = 0.5, 0.5, 1
SYNTH_BLOCK = 65_536
CACHE = ROOT / "target" / "bench_search"


def synth_base(real, rows, path):
    """The `rows` x d synthetic base (a float32 .npy memory map), made once in blocks."""
    if path.exists():
        return np.load(path, mmap_mode="r")
    n, d = real.shape
    part = path.with_name(path.name + ".part")
    out = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=(rows, d))
    spread = real.std(0).astype(np.float32)
    rng = np.random.default_rng(SYNTH_SEED)
    for a in range(0, rows, SYNTH_BLOCK):
        b = min(rows, a + SYNTH_BLOCK)
        m = b - a
        y = real[np.arange(a, b) % n].copy()
        for _ in range(2):
            w = rng.uniform(0, SYNTH_MIX, (m, 1)).astype(np.float32)
            y += w * real[rng.integers(0, n, m)]
        y += SYNTH_NOISE * spread * rng.standard_normal((m, d), dtype=np.float32)
        real_rows = max(0, min(b, n) - a)
        y[:real_rows] = real[a:a + real_rows]
        out[a:b] = unit(y)
    out.flush()
    del out
    part.rename(path)
    return np.load(path, mmap_mode="r")


def exact_top(base, q, k, path):
    """Exact float top-k ids (cosine on unit rows) over `base`, in blocks, cached."""
    if path.exists():
        return np.load(path)
    nq = len(q)
    best_s = np.full((nq, k), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, k), dtype=np.int64)
    for a in range(0, len(base), SYNTH_BLOCK // 2):
        s = q @ np.asarray(base[a:a + SYNTH_BLOCK // 2]).T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], 1)
        cand_i = np.concatenate([best_i, top + a], 1)
        # Best score first, the smaller row first among equal scores.
        order = np.lexsort((cand_i, -cand_s), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    np.save(path, best_i)
    return best_i


def max_rss_search(tiered, queries_npy, depth, hamming):
    """`vectro search` on the file: (max RSS, as /usr/bin/time -v reports it; peak
    anonymous RSS, /proc/PID/status RssAnon sampled every 10 ms; seconds)."""
    cmd = [str(ROOT / "target/release/vectro"), "search", str(tiered),
           "--queries", str(queries_npy), "-k", str(K), "--rescore", str(depth),
           "--threads", str(THREADS), "--format", "npy", "--out", str(queries_npy.with_suffix("")) + ".hits",
           "--force", "-q"] + (["--hamming"] if hamming else [])
    return peak_memory.measure(cmd)


def scale_run(name, real, q, rows, repeats, rows_out, depths):
    """Binary + int8 at `rows` synthetic rows: vectro's tiered binary:rotate=1+int8 file
    (Hamming, and the float query against the sign bits) against faiss IndexBinaryFlat on
    the sign bits of the rows as they are and under a random orthogonal rotation, each
    rescored in numpy with per-row int8 (vectro's), every method at N=100 and up the depths
    until recall@10 >= 0.99."""
    CACHE.mkdir(parents=True, exist_ok=True)
    n, d = real.shape
    tag = f"{name}-synth{rows}-mix{SYNTH_MIX}-noise{SYNTH_NOISE}-seed{SYNTH_SEED}"
    t = time.perf_counter()
    base = synth_base(real, rows, CACHE / f"{tag}.npy")
    want = exact_top(base, q, K, CACHE / f"{tag}.q{len(q)}.top{K}.npy")
    print(f"\n{name} synthesised to {rows} rows x {d} dims ({n} real base rows, the rest made from "
          f"them: mixture weights < {SYNTH_MIX}, noise {SYNTH_NOISE} x per-dimension spread); "
          f"{len(q)} held-out real queries, {THREADS} threads, best of {repeats}; base and exact "
          f"top-{K} ready in {time.perf_counter() - t:.1f} s (cached in {CACHE.relative_to(ROOT)})")
    tiered = CACHE / f"{tag}.tiers.vectro"
    if not tiered.exists():
        t = time.perf_counter()
        subprocess.run([str(ROOT / "target/release/vectro"), "compress", str(CACHE / f"{tag}.npy"),
                        "-o", str(tiered), "--codec", "binary:rotate=1", "--rescore", "int8",
                        "--threads", str(THREADS), "-q", "--force"], check=True)
        print(f"  tiered binary:rotate=1 + int8 file written in {time.perf_counter() - t:.1f} s")
    size = tiered.stat().st_size
    print(f"  tiered file {size / 2**20:.0f} MiB ({size / rows:.0f} B/row)")
    # vectro runs as the command line (`vectro search --format npy`), so its times include
    # starting the process, opening the file and checking each chunk's crc32c once.
    qpath = CACHE / f"{tag}.queries.npy"
    np.save(qpath, q)
    hits = CACHE / f"{tag}.hits"

    def cli(depth, hamming):
        cmd = [str(ROOT / "target/release/vectro"), "search", str(tiered), "--queries", str(qpath),
               "-k", str(K), "--metric", "cos", "--rescore", str(depth), "--threads", str(THREADS),
               "--format", "npy", "--out", str(hits), "--force", "-q"] + (["--hamming"] if hamming else [])

        def go():
            subprocess.run(cmd, check=True)
            return np.load(f"{hits}.ids.npy")
        return go

    cli(100, True)()  # the file's pages in the page cache, as for faiss's arrays
    faiss.omp_set_num_threads(THREADS)
    record = recorder(f"{name}-synth{rows}", base, q, want, rows_out)

    # faiss side: sign bits (plain and rotated) and vectro's per-row int8, made in blocks.
    rot, _ = np.linalg.qr(np.random.default_rng(7).standard_normal((d, d)))
    rot = rot.astype(np.float32)
    plain, rotated = faiss.IndexBinaryFlat(d), faiss.IndexBinaryFlat(d)
    row_int8 = np.empty((rows, d), dtype=np.int8)
    row_mul = np.empty(rows, dtype=np.float32)
    for a in range(0, rows, SYNTH_BLOCK):
        x = np.asarray(base[a:a + SYNTH_BLOCK])
        plain.add(np.packbits(x > 0, axis=1))
        rotated.add(np.packbits(x @ rot > 0, axis=1))
        scale = np.maximum(np.abs(x).max(1), 1e-30) / 127
        c = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
        row_int8[a:a + len(x)] = c
        row_mul[a:a + len(x)] = 1 / np.linalg.norm(c.astype(np.float32), axis=1)
    del base

    def faiss_recipe(index, rotate):
        def run(depth):
            def go():
                qb = np.packbits((q @ rot if rotate else q) > 0, axis=1)
                _, cand = index.search(qb, depth)
                out = np.empty((len(q), K), dtype=np.int64)
                for a in range(0, len(q), NP_BLOCK):
                    c = cand[a:a + NP_BLOCK]
                    scores = np.einsum("qd,qcd->qc", q[a:a + NP_BLOCK], row_int8[c].astype(np.float32))
                    scores *= row_mul[c]
                    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
                    out[a:a + NP_BLOCK] = np.take_along_axis(c, order, 1)
                return out
            return go
        return run

    bpr = d // 8 + 4 + d + 4
    methods = [
        ("vectro search, tiered binary:rotate=1+int8 file, hamming", bpr, lambda depth: cli(depth, True)),
        ("vectro search, tiered binary:rotate=1+int8 file, float query", bpr, lambda depth: cli(depth, False)),
        ("faiss IndexBinaryFlat + numpy per-row int8 (vectro's), sign bits", d // 8 + d + 4,
         faiss_recipe(plain, False)),
        ("faiss IndexBinaryFlat + numpy per-row int8 (vectro's), rotated sign bits", d // 8 + d + 4,
         faiss_recipe(rotated, True)),
    ]
    print(f"  every method at N=100, then up the depths until recall@10 >= {TARGET}:")
    at100, reached = {}, {}
    for method, bytes_per_row, make in methods:
        for depth in depths:
            ids, t = best(make(depth), repeats)
            qps = record(f"{method}, rescore {depth}", ids, t, bytes_per_row, note=f"sweep N={depth}")
            r = recall(ids, want)
            if depth == 100:
                at100[method] = (r, qps)
            if r >= TARGET:
                reached[method] = (depth, qps)
                break
    print(f"  load average {' '.join(open('/proc/loadavg').read().split()[:3])} after the timed runs")
    print(f"  summary ({rows} rows):")
    for method, _, _ in methods:
        r, qps100 = at100.get(method, (float("nan"), float("nan")))
        depth, qps = reached.get(method, (None, None))
        print(f"    {method:<72} N=100: {r:.4f} {qps100:9.1f} q/s; "
              + (f"first N >= {TARGET}: {depth} at {qps:9.1f} q/s" if depth else "0.99 not reached"))
    faiss_best = max((v for m, v in reached.items() if m.startswith("faiss")), key=lambda v: v[1], default=None)
    faiss100 = max(v[1] for m, v in at100.items() if m.startswith("faiss"))
    for method, _, _ in methods[:2]:
        if method in reached and faiss_best:
            print(f"    ratio {method} / fastest faiss recipe at >= {TARGET}: "
                  f"{reached[method][1] / faiss_best[1]:.2f}x")
        print(f"    ratio {method} / fastest faiss recipe at N=100: {at100[method][1] / faiss100:.2f}x")

    # Memory of the command-line search (the file is bigger than what it keeps resident?).
    for method, hamming in ((methods[0][0], True), (methods[1][0], False)):
        depth = reached.get(method, (max(depths), None))[0]
        rss, anon, secs = max_rss_search(tiered, qpath, depth, hamming)
        print(f"    vectro search --rescore {depth}{' --hamming' if hamming else ''}: max RSS "
              f"{rss / 2**20:.0f} MiB (anonymous at most {anon / 2**20:.0f} MiB, the rest mapped pages of the file "
              f"and the program) for a {size / 2**20:.0f} MiB file ({secs:.1f} s with process start)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", default="/work/shared/data/minilm_wordnet_10k.npy")
    ap.add_argument("--queries", type=int, default=1000, help="rows split off as held-out queries")
    ap.add_argument("--generated-rows", type=int, default=0,
                    help="also run on this many rows of `vectro generate` (384-d, clustered)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--only", choices=["all", "rq", "pq4"], default="all",
                    help="rq: only the rq comparison (4. above); pq4: only 3.")
    ap.add_argument("--depths", default=",".join(map(str, DEPTHS)),
                    help="rescoring depths N swept for the binary recipes (comma-separated)")
    ap.add_argument("--rows", type=int, default=0,
                    help="only the binary + int8 recipe (with --only pq4: only the pq4 "
                         "fast-scan), on this many rows synthesised from the real base rows "
                         "(see scale_run); --depths then starts at 100")
    ap.add_argument("--binary-only", action="store_true",
                    help="only the binary + int8 rows and the depth sweep (no pq)")
    a = ap.parse_args()
    depths = tuple(int(v) for v in a.depths.split(","))
    global BINARY_ONLY
    BINARY_ONLY = a.binary_only

    def run(*args):
        if a.rows and a.only == "pq4":
            name, base, q, repeats, tmp, out = args
            pq4_scale(name, base, q, a.rows, repeats, tmp, out)
        elif a.rows:
            name, base, q, repeats, _tmp, out = args
            scale_run(name, base, q, a.rows, repeats, out, depths)
        elif a.only == "rq":
            rq_only(*args)
        elif a.only == "pq4":
            pq4_only(*args)
        else:
            run_set(*args, depths)

    def rows_out(row):
        # Appended as measured, so that a run cut short keeps what it measured.
        if not a.csv:
            return
        with open(a.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["started", "host", *row.keys()])
            w.writerow(dict(started=os.environ.get("BENCH_STARTED", ""),
                            host=os.environ.get("BENCH_HOST", ""), **row))
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        tmp = pathlib.Path(tmp)
        if a.data and os.path.exists(a.data):
            x = unit(np.load(a.data))
            rng = np.random.default_rng(0)
            perm = rng.permutation(len(x))
            q, base = x[perm[: a.queries]], np.ascontiguousarray(x[perm[a.queries:]])
            run(pathlib.Path(a.data).stem, base, q, a.repeats, tmp, rows_out)
        if a.generated_rows:
            g = tmp / "gen.npy"
            subprocess.run([str(ROOT / "target/release/vectro"), "generate", "--out", str(g),
                            "--rows", str(a.generated_rows + a.queries), "--dims", "384", "-q"],
                           check=True)
            x = unit(np.load(g))
            g.unlink()
            run(f"generated{a.generated_rows}", np.ascontiguousarray(x[a.queries:]), x[: a.queries],
                a.repeats, tmp, rows_out)


if __name__ == "__main__":
    main()
