"""Shared data of the integration tests: two containers of the same clustered rows (string
ids with int4, integer ids with binary), a payload, queries, the exact neighbours and the
recall@10 `vectro.eval` reports. Everything written here by numpy and pyarrow.

Run by scripts/test_integrations.sh, which installs the extras and starts Milvus.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Dict, List, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vectro

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = pathlib.Path(os.environ.get("VECTRO_EXAMPLES", ROOT / "examples" / "integrations"))
ROWS, DIMS, CHUNK, K = 4000, 64, 500, 10


def embeddings(rows: int, dims: int, seed: int = 0) -> np.ndarray:
    """Unit-length float32 rows with some structure (clusters), like sentence embeddings."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((16, dims), dtype=np.float32)
    x = centers[rng.integers(0, 16, rows)] + 0.5 * rng.standard_normal((rows, dims), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclasses.dataclass
class Data:
    dir: pathlib.Path
    x: np.ndarray
    queries: np.ndarray
    truth: np.ndarray  # (queries, K) row numbers, exact cosine over the original rows
    str_path: pathlib.Path  # int4, string ids
    str_ids: List[str]
    u64_path: pathlib.Path  # binary, integer ids
    u64_ids: np.ndarray
    payload: pa.Table
    payload_path: pathlib.Path  # the same table in Parquet, row groups not chunk-aligned
    recall: Dict[str, float]  # "str"/"u64" -> recall@10 of vectro.eval

    def rows_of(self, kind: str) -> Dict[Any, int]:
        ids = self.str_ids if kind == "str" else [int(i) for i in self.u64_ids]
        return {i: r for r, i in enumerate(ids)}

    def recall_of(self, kind: str, found: Sequence[Sequence[Any]]) -> float:
        """recall@K of an engine's results (ids per query) against the exact neighbours."""
        rows = self.rows_of(kind)
        assert len(found) == len(self.truth)
        total = 0.0
        for f, t in zip(found, self.truth):
            got = {rows[i] for i in f[:K]}
            total += len(got & set(t.tolist())) / K
        return total / len(self.truth)

    def payload_rows(self) -> List[Dict[str, Any]]:
        return self.payload.to_pylist()


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    d = tmp_path_factory.mktemp("integrations")
    x = embeddings(ROWS, DIMS)
    rng = np.random.default_rng(7)
    q = x[rng.choice(ROWS, 100, replace=False)] + 0.2 * rng.standard_normal((100, DIMS), dtype=np.float32)
    q = np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)
    np.save(d / "orig.npy", x)
    np.save(d / "queries.npy", q)
    scores = q.astype(np.float64) @ x.astype(np.float64).T
    truth = np.argsort(-scores, axis=1, kind="stable")[:, :K]

    # String ids with spaces, slashes and non-ASCII; integer ids beyond 2**32, shuffled.
    str_ids = [f"doc/{i:05d} – é{i % 7}" for i in range(ROWS)]
    u64_ids = rng.choice(np.uint64(1) << np.uint64(40), ROWS, replace=False).astype(np.uint64)
    payload = pa.table(
        {
            "title": [f"title «{i}»" for i in range(ROWS)],
            "year": rng.integers(1900, 2030, ROWS).astype(np.int64),
            "score": rng.standard_normal(ROWS),
            "flag": rng.integers(0, 2, ROWS).astype(bool),
            "tags": [[f"t{i % 3}", f"u{i % 5}"] for i in range(ROWS)],
        }
    )
    pq.write_table(payload, d / "payload.parquet", row_group_size=700)

    str_path, u64_path = d / "str.vectro", d / "u64.vectro"
    vectro.compress(x, str_path, codec="int4", chunk_rows=CHUNK, ids=str_ids, fsync=False)
    vectro.compress(x, u64_path, codec="binary", chunk_rows=CHUNK, ids=u64_ids, fsync=False)
    recall = {}
    for kind, path in (("str", str_path), ("u64", u64_path)):
        r = vectro.eval(d / "orig.npy", path, queries=d / "queries.npy", k=[K])
        (at_k,) = [e for e in r["recall"] if e["k"] == K]
        recall[kind] = at_k["recall"]
    return Data(d, x, q, truth, str_path, str_ids, u64_path, u64_ids, payload, d / "payload.parquet", recall)


class Failing:
    """Makes the loader fail after the engine acknowledged window ``after`` but before the
    checkpoint recorded it: the worst moment for a resume."""

    def __init__(self, monkeypatch: Any, after: int) -> None:
        from vectro.integrations import _common

        self.calls = 0
        real = _common.Checkpoint.save

        def save(ckpt: Any, rows: int) -> None:
            self.calls += 1
            if self.calls == after:
                raise RuntimeError(f"injected failure after {rows} rows")
            real(ckpt, rows)

        monkeypatch.setattr(_common.Checkpoint, "save", save)
