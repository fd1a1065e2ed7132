"""Payload columns (format 1.5) and Parquet export, end to end as a user runs them: a
sharded Parquet dataset written by pyarrow, with string ids and payload columns, is
compressed shard by shard, merged, exported to Parquet and JSONL, and loaded back with
pyarrow: every id exactly once, with its vector (within int8's bound) and its payload
values."""

import json
import sys

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import vectro  # noqa: E402
from conftest import embeddings  # noqa: E402

ROWS, DIMS, FILES = 900, 32, 3
PAYLOAD = ["title", "n", "score", "flag", "tags", "half"]


def table(x, lo, hi):
    i = np.arange(lo, hi)
    return pa.table(
        {
            "id": [f"doc-{k:05d}-ü" for k in i],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x[lo:hi].reshape(-1)), DIMS),
            "title": [None if k % 7 == 3 else f"title {k}, \"q\"\n" for k in i],
            "n": pa.array(i * 3 - 100, pa.int64()),
            "score": pa.array(i / 7.0, pa.float64()),
            "flag": pa.array(i % 3 == 0),
            "tags": pa.array([[f"t{j}" for j in range(k % 4)] for k in i], pa.large_list(pa.large_string())),
            "half": pa.array((i % 9).astype(np.float16)),
            "ignored": pa.array(i.astype(np.int32)),
        }
    )


@pytest.fixture
def dataset(tmp_path):
    """A Hugging Face-style directory of FILES Parquet shards; row groups cut inside chunks."""
    x = embeddings(ROWS, DIMS)
    d = tmp_path / "data"
    d.mkdir()
    per = ROWS // FILES
    for f in range(FILES):
        pq.write_table(table(x, f * per, (f + 1) * per), d / f"train-{f:05d}-of-{FILES:05d}.parquet", row_group_size=111)
    return d, x, pq.read_table(d)


def expect_rows(got, source, x):
    """Every source id exactly once, with its vector and payload values."""
    ids = got["id"].to_pylist()
    assert sorted(ids) == sorted(source["id"].to_pylist())
    assert len(set(ids)) == ROWS
    at = {k: i for i, k in enumerate(source["id"].to_pylist())}
    order = [at[k] for k in ids]
    v = np.array(got["vector"].to_pylist(), dtype=np.float32)
    want = x[order]
    bound = np.abs(want).max(axis=1, keepdims=True) / 127 * 0.5 + 1e-6
    assert (np.abs(v - want) <= bound).all()
    for name in PAYLOAD:
        want_vals = source[name].take(pa.array(order)).to_pylist()
        got_vals = got[name].to_pylist()
        if name == "half":
            want_vals = [float(w) for w in want_vals]
        assert got_vals == want_vals, name


def test_sharded_dataset_through_merge_and_export(dataset, tmp_path, cli):
    d, x, source = dataset
    for k in range(2):
        vectro.compress(
            d, tmp_path / "parts" / "part-{shard}.vectro", column="embedding",
            id_column="id", payload_columns=PAYLOAD, shard=f"{k}/2", chunk_rows=100,
        )
    merged = tmp_path / "all.vectro"
    cli("merge", "-q", "--out", merged, tmp_path / "parts" / "part-0.vectro", tmp_path / "parts" / "part-1.vectro")
    single = tmp_path / "single.vectro"
    vectro.compress(d, single, column="embedding", id_column="id", payload_columns=PAYLOAD, chunk_rows=100)
    assert merged.read_bytes() == single.read_bytes()

    cli("export", "-q", merged, "--out", tmp_path / "all.parquet")
    got = pq.read_table(tmp_path / "all.parquet")
    assert got.schema.names == ["id", "vector"] + PAYLOAD
    assert got.schema.field("vector").type == pa.list_(pa.float32(), DIMS)
    assert got.schema.field("tags").type == pa.list_(pa.string())
    assert got.schema.field("half").type == pa.float32()
    expect_rows(got, source, x)

    # Each shard exported on its own, as parallel upserts do: together, every row once.
    parts = []
    for k in range(2):
        out = tmp_path / f"part-{k}.jsonl"
        cli("export", "-q", tmp_path / "parts" / f"part-{k}.vectro", "--out", out)
        parts += [json.loads(line) for line in out.read_text().splitlines()]
    expect_rows(pa.Table.from_pylist(parts), source, x)


def test_container_payload_and_ids(dataset, tmp_path, monkeypatch):
    d, x, source = dataset
    out = tmp_path / "c.vectro"
    vectro.compress(d, out, column="embedding", id_column="id", payload_columns=PAYLOAD, chunk_rows=64)
    with vectro.open(out) as c:
        assert [n for n, _ in c.payload_columns] == PAYLOAD
        assert dict(c.payload_columns)["tags"] == "list<string>"
        t = c.payload(250, 420)
        assert isinstance(t, pa.Table) and t.num_rows == 170
        assert t["title"].to_pylist() == source["title"][250:420].to_pylist()
        assert t["tags"].to_pylist() == source["tags"][250:420].to_pylist()
        assert c.ids(250, 252) == source["id"][250:252].to_pylist()
        # Without pyarrow: a dict of lists.
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        plain = c.payload(0, 5)
        assert isinstance(plain, dict) and list(plain) == PAYLOAD
        assert plain["n"] == source["n"][:5].to_pylist()
        assert plain["title"] == source["title"][:5].to_pylist()
        assert plain["tags"] == source["tags"][:5].to_pylist()
    vectro.compress(x, tmp_path / "plain.vectro")
    with vectro.open(tmp_path / "plain.vectro") as c:
        assert c.payload() is None and c.payload_columns == []


def test_bad_payload_columns_are_named(dataset, tmp_path):
    d, _, _ = dataset
    out = tmp_path / "x.vectro"
    with pytest.raises(vectro.BadInputError, match=r'has no column "nope" for --payload-columns'):
        vectro.compress(d, out, column="embedding", payload_columns=["title", "nope"])
    with pytest.raises(vectro.UsageError, match=r'"id" would collide'):
        vectro.compress(d, out, column="embedding", payload_columns=["id"])
    t = pa.table({"e": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(8, np.float32)), 4),
                  "when": pa.array([1, 2], pa.date32())})
    pq.write_table(t, tmp_path / "d.parquet")
    with pytest.raises(vectro.BadInputError, match=r'payload column "when" is date32'):
        vectro.compress(tmp_path / "d.parquet", out, payload_columns=["when"])
    assert not out.exists()
