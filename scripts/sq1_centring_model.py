"""A numpy model of one-bit `sq` codes with and without centring, over rotation seeds.

Why `sq:bits=1` reads below faiss `IndexRaBitQ` at one bit (scripts/sq_vs_rabitq.sh): faiss's
`train` stores the mean `c` of the base, codes `o − c`, keeps a per-row factor that carries
`<o, c>`, and centres the query too, so its score estimates `<q − c, o − c>` (whose error
scales with the part of `q − c` off the row) and adds the rest exactly. This models the
one-bit estimator (`<Q q', g L>`, `L` the signs of the rotated row, `g = ‖v‖² / <L, v>`) with
the `sq` rotation `Q` (three rounds of random signs and 256-point Walsh–Hadamard transforms
on `[0, 256)` and `[128, 384)` at 384 dims), its signs drawn as vectro draws them (splitmix64
of the seed, FORMAT.md "Rotation"), so that for each seed the model is the codec up to the
precision of its stored factors and its sampled mean; `--numpy-signs` draws them from numpy
instead (another five draws of the same transform). Variants:

- `none`: `sq:bits=1` as it is (`v = Q o`, query `Q q`);
- `rows`: rows centred, `v = Q (o − c)`, score `<Q q, g L> + <q, c>` (the same ranking as
  decoding each row to `c + Qᵀ g L`, so no new per-row bytes);
- `rows+query`: faiss's estimator, `<Q (q − c), g L> + <o, c>`: `<o, c>` is one more float
  a row (4 bytes: 56 a row at 384 dims, faiss's size), and the score is not an inner product
  with a decoded row;
- `decoded`: what `sq:bits=B,centre=1` does, the rows centred and each decoded to
  `x' = Qᵀ g L + κ c` with `κ = (<o, c> − <g L, Q c>) / ‖c‖²` (the same 4 bytes a row,
  `<o, c>`), so that `<x', c> = <o, c>`; score `<q, x'>`, an inner product with a decoded
  row whose error is `rows+query`'s without its term along `c`;
- `decoded, 32 more bits` (a model, not a codec): `decoded` with the row's three numbers
  (`‖v‖`, `cos θ = <L, v> / (‖L‖ ‖v‖)`, and `<o − c, c> / (‖v‖ ‖c‖)`) packed into one 32-bit
  word (6 mantissa bits of `‖v‖`'s float, 8 bits of `cos θ`, 10 bits of the cosine), and
  the 4 bytes freed spent on 32 more signs: the centred row is padded with 32 zeros and
  rotated over `d + 32` dims (the same kind of transform and seed, `Rotation::new(d + 32,
  3, seed)`) before its signs are taken; the query is padded and rotated alike. The same
  bytes a row as `decoded` (56 at 384 dims).

`c` is the mean of the base rows (`base`), of 1,000 rows drawn from them (`sample`), or of the
first rows in file order that fill one 4 MiB chunk (`first-chunk`, what a streaming encoder
sees first). The split is sq_vs_rabitq.py's (seed 2024, 1,000 held-out queries); nothing is
tuned on the queries.

    python3 scripts/sq1_centring_model.py [--npy FILE] [--seeds 5] [--numpy-signs]
"""
import argparse

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--npy", default="/work/shared/data/minilm_wordnet_10k.npy")
ap.add_argument("--queries", type=int, default=1000)
ap.add_argument("--seeds", type=int, default=5)
ap.add_argument("--numpy-signs", action="store_true",
                help="draw the rotation's signs from numpy, not as vectro does")
args = ap.parse_args()

x = np.load(args.npy).astype(np.float32)
x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
perm = np.random.default_rng(2024).permutation(len(x))
q = x[perm[: args.queries]].astype(np.float64)
base = x[np.sort(perm[args.queries:])].astype(np.float64)
n, d = base.shape
truth = np.argsort(-(q @ base.T), axis=1, kind="stable")[:, :10]
EXTRA = 32  # the signs the packed factor word frees


def recall(scores):
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, top)])


def splitmix64(seed):
    m = (1 << 64) - 1
    s = seed & m
    while True:
        s = (s + 0x9E3779B97F4A7C15) & m
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        yield z ^ (z >> 31)


def vectro_signs(seed, rounds, dims):
    """`Rotation::new(dims, rounds, seed)`'s signs: bit i % 64 of a fresh draw every 64."""
    g, out = splitmix64(seed), np.empty((rounds, dims))
    for r in range(rounds):
        for i in range(dims):
            if i % 64 == 0:
                word = next(g)
            out[r, i] = -1.0 if (word >> (i % 64)) & 1 else 1.0
    return out


def hadamard(m):
    h = np.array([[1.0]])
    while h.shape[0] < m:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(m)


def transform(signs):
    """Rounds of: flip signs, Hadamard on [0, w), then on [dims − w, dims)."""
    dims = signs.shape[1]
    w = 1 << (dims.bit_length() - 1)
    h = hadamard(w)

    def apply(a):
        a = np.asarray(a, dtype=np.float64)
        if a.shape[1] < dims:
            a = np.concatenate([a, np.zeros((len(a), dims - a.shape[1]))], axis=1)
        a = a.copy()
        for s in signs:
            a *= s
            a[:, :w] = a[:, :w] @ h
            if w < dims:
                a[:, dims - w:] = a[:, dims - w:] @ h
        return a

    return apply


def rotation(seed, dims=d):
    if args.numpy_signs:
        return transform(np.random.default_rng(seed).choice([-1.0, 1.0], (3, dims)))
    return transform(vectro_signs(seed, 3, dims))


def mantissa(v, bits):
    m, e = np.frexp(v)
    return np.ldexp(np.round(m * 2.0 ** (bits + 1)) / 2.0 ** (bits + 1), e)


def decoded_scores(v, rq, rc, c, packed):
    """Scores of `<q, x'>`, `x' = Qᵀ g L + κ c`, from the rotated centred rows `v`, the
    rotated queries `rq` and mean `rc`; `packed` rounds the row's numbers to 32 bits."""
    dims = v.shape[1]
    L = np.where(v >= 0, 1.0, -1.0)
    nv = np.linalg.norm(v, axis=1)
    cos = (L * v).sum(1) / (np.sqrt(dims) * nv)
    xc = base @ c
    if packed:
        nc = np.linalg.norm(c)
        nv = mantissa(nv, 6)
        cos = np.round(cos * 255) / 255
        xc = c @ c + nv * nc * np.round((xc - c @ c) / (nv * nc) * 511) / 511
    g = nv / (np.sqrt(dims) * cos)
    kappa = (xc - g * (L @ rc)) / (c @ c)
    return (rq @ L.T) * g[None, :] + (q @ c)[:, None] * kappa[None, :]


centres = {
    "base": base.mean(0),
    "sample": base[np.random.default_rng(7).choice(n, 1000, replace=False)].mean(0),
    "first-chunk": base[: (4 << 20) // (4 * d)].mean(0),
}
signs = "numpy's" if args.numpy_signs else "vectro's"
print(f"{n} base rows x {d} dims, {len(q)} held-out queries, seeds 1..{args.seeds}, "
      f"{signs} rotation signs")
print()
print("| variant | centre | recall@10 per seed | mean ± sd |")
print("|---|---|---|---|")
runs = [("none", None)] + [(v, c) for v in ("rows", "rows+query", "decoded") for c in centres]
runs += [("decoded, 32 more bits", c) for c in ("base", "sample")]
for variant, centre in runs:
    r = []
    for seed in range(1, args.seeds + 1):
        rot = rotation(seed, d + EXTRA if "32" in variant else d)
        c = centres[centre] if centre else np.zeros(d)
        v, rq = rot(base - c), rot(q)
        if variant.startswith("decoded"):
            rc = rot(c[None, :])
            s = decoded_scores(v, rq, rc[0], c, "32" in variant)
        else:
            L = np.where(v >= 0, 1.0, -1.0)
            est = L * ((v * v).sum(1) / (L * v).sum(1))[:, None]
            if variant == "rows+query":
                s = rot(q - c) @ est.T + (base @ c)[None, :]
            else:
                s = rq @ est.T + (q @ c)[:, None]
        r.append(recall(s))
    r = np.array(r)
    per = ", ".join(f"{v:.4f}" for v in r)
    print(f"| {variant} | {centre or '-'} | {per} | {r.mean():.4f} ± {r.std(ddof=1):.4f} |",
          flush=True)
