"""Compress embeddings with string ids, load them and a payload into LanceDB, search.

    python examples/integrations/lancedb_example.py [--dir DIR]

Needs `pip install vectro[lancedb]`; LanceDB is embedded (a directory, DIR/lance).
"""

import argparse
import pathlib
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import vectro
from vectro.integrations import lancedb as vlance


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    args = ap.parse_args()
    work = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="vectro-lancedb-"))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 64), dtype=np.float32)
    ids = [f"doc-{i:05d}" for i in range(len(x))]
    pq.write_table(
        pa.table({"title": [f"title {i}" for i in range(len(x))], "year": rng.integers(1990, 2025, len(x))}),
        work / "docs.parquet",
    )
    vectro.compress(x, work / "docs.vectro", codec="int8", ids=ids, force=True)

    # id (string), vector (fixed_size_list<float32>[64]), title, year; then IVF_PQ.
    summary = vlance.load(
        work / "docs.vectro", work / "lance", "docs", payload=work / "docs.parquet",
        num_partitions=8, num_sub_vectors=8, checkpoint=work / "docs.lance.json", overwrite=True,
    )
    print(f"loaded {summary['rows']} rows into {summary['table']}, index {summary['index']}")

    hits, dist = vlance.search(work / "lance", "docs", x[:3], k=5, columns=["title"], refine_factor=10)
    for q, (h, d) in enumerate(zip(hits, dist)):
        print(f"query {q}: " + ", ".join(f"{i} {p['title']!r} {v:.3f}" for (i, p), v in zip(h, d)))
    assert hits[0][0][0] == "doc-00000", hits[0][0]


if __name__ == "__main__":
    main()
