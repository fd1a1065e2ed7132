"""Compress embeddings with string ids, load them and a payload into Milvus, search.

    python examples/integrations/milvus_example.py [--uri http://localhost:19530] [--dir DIR]

Needs `pip install vectro[milvus]` and a Milvus server (scripts/milvus_local.sh up starts
one from PyPI's `milvus` package).
"""

import argparse
import pathlib
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import vectro
from vectro.integrations import milvus


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", default="http://localhost:19530")
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    args = ap.parse_args()
    work = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="vectro-milvus-"))

    # Embeddings, their ids and a payload, as a pipeline would have them.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 64), dtype=np.float32)
    ids = [f"doc-{i:05d}" for i in range(len(x))]
    pq.write_table(
        pa.table({"title": [f"title {i}" for i in range(len(x))], "year": rng.integers(1990, 2025, len(x))}),
        work / "docs.parquet",
    )
    vectro.compress(x, work / "docs.vectro", codec="int8", ids=ids, force=True)

    # Stream it into a collection: an id field, the vectors, the payload fields; HNSW.
    summary = milvus.load(
        work / "docs.vectro",
        "vectro_example",
        uri=args.uri,
        payload=work / "docs.parquet",
        index="HNSW",
        checkpoint=work / "docs.milvus.json",  # a rerun after a failure resumes here
        overwrite=True,
    )
    print(f"loaded {summary['rows']} rows into {summary['collection']} ({summary['id_type']} ids)")

    hits, scores = milvus.search("vectro_example", x[:3], k=5, uri=args.uri, output_fields=["title"])
    for q, (h, s) in enumerate(zip(hits, scores)):
        print(f"query {q}: " + ", ".join(f"{i} {p['title']!r} {d:.3f}" for (i, p), d in zip(h, s)))
    assert hits[0][0][0] == "doc-00000", hits[0][0]


if __name__ == "__main__":
    main()
