"""Compress embeddings with string ids, load them and a payload into Qdrant, search.

    python examples/integrations/qdrant_example.py [--dir DIR] [--url http://localhost:6333]

Without --url, Qdrant's engine runs in-process (a Qdrant Edge shard in DIR/shard);
with it, the same loader writes to that Qdrant server through qdrant_client. Needs
`pip install vectro[qdrant]`.
"""

import argparse
import pathlib
import tempfile

import numpy as np
import pyarrow as pa

import vectro
from vectro.integrations import qdrant


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    ap.add_argument("--url", default=None, help="a Qdrant server, instead of the in-process engine")
    args = ap.parse_args()
    work = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="vectro-qdrant-"))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 64), dtype=np.float32)
    ids = [f"doc-{i:05d}" for i in range(len(x))]
    payload = pa.table({"title": [f"title {i}" for i in range(len(x))], "year": rng.integers(1990, 2025, len(x))})
    vectro.compress(x, work / "docs.vectro", codec="int8", ids=ids, force=True)

    if args.url:
        from qdrant_client import QdrantClient

        target, kw = QdrantClient(url=args.url), {"collection": "vectro_example"}
    else:
        target, kw = work / "shard", {}  # a Qdrant Edge shard, created here
    summary = qdrant.load(
        work / "docs.vectro", target, payload=payload, checkpoint=work / "docs.qdrant.json",
        overwrite=True, **kw,
    )
    print(f"loaded {summary['rows']} rows as {summary['points']} points ({summary['id_type']} ids)")
    # String ids became UUIDv5 point ids; the payload keeps the original under "id".
    print(f"doc-00000 is point {qdrant.point_id('doc-00000')}")

    if args.url:
        shard = target
    else:
        from qdrant_edge import EdgeShard

        shard = EdgeShard.load(str(work / "shard"))
    hits, scores = qdrant.search(shard, x[:3], k=5, with_payload=True, **kw)
    for q, (h, s) in enumerate(zip(hits, scores)):
        print(f"query {q}: " + ", ".join(f"{i} {p['title']!r} {d:.3f}" for (i, p), d in zip(h, s)))
    assert hits[0][0][0] == "doc-00000", hits[0][0]
    if not args.url:
        shard.close()


if __name__ == "__main__":
    main()
