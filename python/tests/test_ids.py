"""Row ids (format 1.4): given to compress as an array or a file, carried through shards
and merge, returned by Container.ids(); without ids, rows are known by their global
numbers, a shard's counting from its first row."""

import json

import numpy as np
import pytest

import vectro
from conftest import embeddings


def test_string_ids_from_an_array_round_trip(tmp_path):
    x = embeddings(500, 16)
    ids = np.array([f"doc-{i:04d}-ü" for i in range(500)])
    out = tmp_path / "s.vectro"
    vectro.compress(x, out, chunk_rows=64, ids=ids)
    with vectro.open(out) as c:
        assert c.id_kind == "string"
        assert c.ids() == list(ids)
        assert c.ids(100, 103) == list(ids[100:103])
        assert c.verify()["ok"]


def test_u64_ids_from_a_list_and_from_a_file(tmp_path):
    x = embeddings(300, 8)
    want = np.arange(300, dtype=np.uint64) * 1000 + 2**40
    vectro.compress(x, tmp_path / "a.vectro", chunk_rows=50, ids=list(want))
    np.save(tmp_path / "ids.npy", want)
    vectro.compress(x, tmp_path / "b.vectro", chunk_rows=50, ids=tmp_path / "ids.npy")
    for name in ["a.vectro", "b.vectro"]:
        c = vectro.open(tmp_path / name)
        assert c.id_kind == "u64"
        got = c.ids()
        assert got.dtype == np.uint64
        np.testing.assert_array_equal(got, want)


def test_bad_ids_are_refused(tmp_path):
    x = embeddings(10, 4)
    with pytest.raises(vectro.BadInputError, match="holds 9 ids"):
        vectro.compress(x, tmp_path / "a.vectro", ids=np.arange(9))
    with pytest.raises(vectro.BadInputError, match="negative"):
        vectro.compress(x, tmp_path / "b.vectro", ids=np.arange(10) - 1)
    with pytest.raises(vectro.BadInputError, match="empty"):
        vectro.compress(x, tmp_path / "c.vectro", ids=[""] + ["a"] * 9)
    with pytest.raises(vectro.BadInputError, match="cannot hold ids"):
        vectro.compress(x, tmp_path / "d.vectro", ids=np.zeros(10))
    assert not list(tmp_path.glob("*.vectro"))


def test_shards_without_ids_number_rows_globally(tmp_path, cli):
    x = embeddings(1000, 8)
    np.save(tmp_path / "x.npy", x)
    for k in range(3):
        vectro.compress(tmp_path / "x.npy", tmp_path / "p-{shard}.vectro", chunk_rows=100, shard=f"{k}/3")
    seen = []
    for k in range(3):
        c = vectro.open(tmp_path / f"p-{k}.vectro")
        assert c.id_kind == "none"
        ids = c.ids()
        np.testing.assert_array_equal(ids, np.arange(c.first_row, c.first_row + len(c)))
        out = cli("export", tmp_path / f"p-{k}.vectro", "--format", "jsonl", "--out", "-")
        seen += [json.loads(line)["id"] for line in out.splitlines()]
    assert sorted(seen) == list(range(1000))
