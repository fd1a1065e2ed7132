"""Compress a Ray Dataset of embeddings in parallel, one shard per block, merged into the
container a single `vectro.compress` of the same rows writes.

    pip install "vectro[ray]"
    RAY_USAGE_STATS_ENABLED=0 python examples/python/ray_compress.py [OUT_DIR]
"""

import os
import sys
import tempfile

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline

import numpy as np
import ray

import vectro
import vectro.ray

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="ray-")
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

rows = np.random.default_rng(0).standard_normal((20_000, 128)).astype(np.float32)
doc_ids = [f"doc-{i}" for i in range(len(rows))]
ds = ray.data.from_items(
    [{"embedding": r, "doc_id": d} for r, d in zip(rows, doc_ids)], override_num_blocks=4
)

summary = vectro.ray.compress_dataset(
    ds, f"{out}/emb.vectro", "int8", column="embedding", id_column="doc_id", chunk_rows=2048
)
print(f"{summary['rows']} rows in {len(summary['shards'])} shards -> {summary['output_bytes']} bytes")

# The same bytes as one process compressing the same rows:
vectro.compress(rows, f"{out}/one.vectro", "int8", ids=doc_ids, chunk_rows=2048, name="<ray-dataset>")
with open(f"{out}/emb.vectro", "rb") as a, open(f"{out}/one.vectro", "rb") as b:
    assert a.read() == b.read()
with vectro.open(f"{out}/emb.vectro") as c:
    print(c.shape, c.codec, c.ids(0, 2))
ray.shutdown()
