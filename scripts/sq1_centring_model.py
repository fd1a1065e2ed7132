"""A numpy model of one-bit `sq` codes with and without centring, over rotation seeds.

Why `sq:bits=1` reads below faiss `IndexRaBitQ` at one bit (scripts/sq_vs_rabitq.sh): faiss's
`train` stores the mean `c` of the base, codes `o − c`, keeps a per-row factor that carries
`<o, c>`, and centres the query too, so its score estimates `<q − c, o − c>` (whose error
scales with the part of `q − c` off the row) and adds the rest exactly. This models the
one-bit estimator (`<Q q', g L>`, `L` the signs of the rotated row, `g = ‖v‖² / <L, v>`) with
the `sq` rotation's structure (three rounds of random signs and 256-point Walsh–Hadamard
transforms on `[0, 256)` and `[128, 384)`; numpy's signs, not vectro's seeded ones), in three
variants:

- `none`: `sq:bits=1` as it is (`v = Q o`, query `Q q`);
- `rows`: rows centred, `v = Q (o − c)`, score `<Q q, g L> + <q, c>` (the same ranking as
  decoding each row to `c + Qᵀ g L`, so no new per-row bytes);
- `rows+query`: faiss's estimator, `<Q (q − c), g L> + <o, c>`: `<o, c>` is one more float
  a row (4 bytes: 56 a row at 384 dims, faiss's size), and the score is not an inner product
  with a decoded row;
- `decoded`: what `sq:bits=B,centre=1` does, the rows centred and each decoded to
  `x' = Qᵀ g L + κ c` with `κ = (<o, c> − <g L, Q c>) / ‖c‖²` (the same 4 bytes a row,
  `<o, c>`), so that `<x', c> = <o, c>`; score `<q, x'>`, an inner product with a decoded
  row whose error is `rows+query`'s without its term along `c`.

`c` is the mean of the base rows (`base`), of 1,000 rows drawn from them (`sample`), or of the
first 2,730 base rows in file order (`first-chunk`, what a streaming encoder sees first: one
4 MiB chunk at 384 dims). The split is sq_vs_rabitq.py's (seed 2024, 1,000 held-out queries);
nothing is tuned on the queries.

    python3 scripts/sq1_centring_model.py [--npy FILE] [--seeds 5]
"""
import argparse

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--npy", default="/work/shared/data/minilm_wordnet_10k.npy")
ap.add_argument("--queries", type=int, default=1000)
ap.add_argument("--seeds", type=int, default=5)
args = ap.parse_args()

x = np.load(args.npy).astype(np.float64)
x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
perm = np.random.default_rng(2024).permutation(len(x))
q = x[perm[: args.queries]]
base = x[np.sort(perm[args.queries:])]
n, d = base.shape
w = 1 << (d.bit_length() - 1)
truth = np.argsort(-(q @ base.T), axis=1)[:, :10]


def recall(scores):
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, top)])


def hadamard(m):
    h = np.array([[1.0]])
    while h.shape[0] < m:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(m)


H = hadamard(w)


def rotation(seed, rounds=3):
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], (rounds, d))

    def rotate(a):
        a = a.copy()
        for s in signs:
            a *= s
            a[:, :w] = a[:, :w] @ H
            if w < d:
                a[:, d - w:] = a[:, d - w:] @ H
        return a

    return rotate


def one_bit(v):
    L = np.where(v >= 0, 1.0, -1.0)
    return L * ((v * v).sum(1) / (L * v).sum(1))[:, None]


centres = {
    "base": base.mean(0),
    "sample": base[np.random.default_rng(7).choice(n, 1000, replace=False)].mean(0),
    "first-chunk": base[: (4 << 20) // (4 * d)].mean(0),
}
print(f"{n} base rows x {d} dims, {len(q)} held-out queries, seeds 1..{args.seeds}")
print()
print("| variant | centre | recall@10 per seed | mean ± sd |")
print("|---|---|---|---|")
runs = [("none", None)] + [(v, c) for v in ("rows", "rows+query", "decoded") for c in centres]
for variant, centre in runs:
    r = []
    for seed in range(1, args.seeds + 1):
        rot = rotation(seed)
        c = centres[centre] if centre else np.zeros(d)
        est = one_bit(rot(base - c))
        if variant == "rows+query":
            s = rot(q - c) @ est.T + (base @ c)[None, :]
        elif variant == "decoded":
            kappa = ((base @ c) - est @ rot(c[None, :])[0]) / (c @ c)
            s = rot(q) @ est.T + (q @ c)[:, None] * kappa[None, :]
        else:
            s = rot(q) @ est.T + (q @ c)[:, None]
        r.append(recall(s))
    r = np.array(r)
    per = ", ".join(f"{v:.4f}" for v in r)
    print(f"| {variant} | {centre or '-'} | {per} | {r.mean():.4f} ± {r.std(ddof=1):.4f} |",
          flush=True)
