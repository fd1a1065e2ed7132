"""A 768-dimension stress set with outlier dimensions, made from a real 384-d sample.

Some embedding models put a few coordinates far outside the rest: a large offset shared by
every row and a spread several times the others'. A codec that quantizes coordinates
independently (pq sub-spaces, a scalar grid without a rotation) spends its levels on them;
a rotation must spread them. This builds such a set from real embeddings so that the
benchmark scripts (sq_vs_rabitq.sh, additive_vs_faiss.sh, codec_table.sh) can run on it:

- row i is the concatenation of real rows i and p(i) (p a seeded permutation), so each half
  keeps real structure and the two halves are independent;
- 6 seeded coordinates become outliers: their values are multiplied by 4 and shifted by
  ±8 standard deviations of the whole matrix (one sign per coordinate, the same for
  every row).

    python3 scripts/outlier768.py [--npy FILE] --out FILE.npy
"""
import argparse

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--npy", default="/work/shared/data/minilm_wordnet_10k.npy")
ap.add_argument("--out", required=True)
ap.add_argument("--outliers", type=int, default=6)
ap.add_argument("--seed", type=int, default=7)
args = ap.parse_args()

x = np.load(args.npy).astype(np.float32)
rng = np.random.default_rng(args.seed)
y = np.concatenate([x, x[rng.permutation(len(x))]], axis=1)
sd = float(y.std())
dims = rng.choice(y.shape[1], args.outliers, replace=False)
signs = rng.choice([-1.0, 1.0], args.outliers)
y[:, dims] = y[:, dims] * 4 + signs * 8 * sd
np.save(args.out, np.ascontiguousarray(y, dtype=np.float32))
share = float((y[:, dims] ** 2).sum() / (y**2).sum())
print(f"{args.out}: {y.shape[0]} x {y.shape[1]}, outlier dims {sorted(dims.tolist())}, "
      f"{share:.0%} of the squared norm in them")
