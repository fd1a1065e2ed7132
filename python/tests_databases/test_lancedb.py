"""vectro.integrations.lancedb against LanceDB embedded (a directory)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections import Counter

import lancedb
import pyarrow as pa
import pytest

from conftest import CHUNK, DIMS, EXAMPLES, K, ROWS, Failing

from vectro.integrations import lancedb as vlance


def everything(db, table):
    return lancedb.connect(str(db)).open_table(table).to_arrow()


def test_string_ids_payload_index_and_recall(data, tmp_path):
    seen = []
    db = tmp_path / "lance"
    s = vlance.load(
        data.str_path, db, "docs", payload=data.payload_path, num_partitions=8, num_sub_vectors=8,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert s["rows"] == ROWS and s["table_rows"] == ROWS and s["index"] == "IVF_PQ"
    assert seen[0] == (0, ROWS) and seen[-1] == (ROWS, ROWS) and len(seen) == ROWS // CHUNK + 1
    t = everything(db, "docs")
    assert t.schema.field("id").type == pa.string()
    assert t.schema.field("vector").type == pa.list_(pa.float32(), DIMS)
    assert t.num_rows == ROWS
    ids = Counter(t.column("id").to_pylist())
    assert set(ids) == set(data.str_ids) and max(ids.values()) == 1
    # Rows in the container's order, payload equal, vectors the decoded rows.
    assert t.column("id").to_pylist() == data.str_ids
    assert t.select(data.payload.column_names).equals(data.payload)
    import vectro
    import numpy as np

    with vectro.open(data.str_path) as c:
        np.testing.assert_array_equal(np.stack(t.column("vector").to_numpy(zero_copy_only=False)), c[:])

    tbl = lancedb.connect(str(db)).open_table("docs")
    (idx,) = tbl.list_indices()
    assert idx.index_type == "IvfPq" and idx.columns == ["vector"]
    hits, _ = vlance.search(db, "docs", data.queries, k=K, exact=True)
    assert data.recall_of("str", hits) == pytest.approx(data.recall["str"], abs=0.005)
    # Through the IVF_PQ index, refined with the stored vectors: close to the exact search.
    approx, _ = vlance.search(db, "docs", data.queries, k=K, nprobes=8, refine_factor=20)
    assert data.recall_of("str", approx) >= data.recall["str"] - 0.05


def test_integer_ids_table_payload_and_recall(data, tmp_path):
    db = tmp_path / "lance"
    s = vlance.load(data.u64_path, db, "docs", payload=data.payload, payload_columns=["year", "tags"], index=False)
    assert s["id_type"] == "uint64" and s["payload_columns"] == ["year", "tags"]
    t = everything(db, "docs")
    assert t.schema.field("id").type == pa.uint64()
    assert t.column("id").to_pylist() == [int(i) for i in data.u64_ids]
    assert t.select(["year", "tags"]).equals(data.payload.select(["year", "tags"]))
    hits, _ = vlance.search(db, "docs", data.queries, k=K, exact=True)
    assert data.recall_of("u64", hits) == pytest.approx(data.recall["u64"], abs=0.005)


def test_resume_after_a_failure_between_the_commit_and_the_checkpoint(data, tmp_path, monkeypatch):
    db, ckpt = tmp_path / "lance", tmp_path / "load.json"
    Failing(monkeypatch, after=3)
    with pytest.raises(RuntimeError, match="injected"):
        vlance.load(data.str_path, db, "docs", checkpoint=ckpt, payload=data.payload, index=False)
    monkeypatch.undo()
    assert everything(db, "docs").num_rows == 3 * CHUNK  # window 3 committed, not recorded
    s = vlance.load(data.str_path, db, "docs", checkpoint=ckpt, payload=data.payload, index=False)
    assert s["skipped_rows"] == 2 * CHUNK and s["table_rows"] == ROWS
    # Without the checkpoint, into the full table: every row merged on id, none added.
    assert vlance.load(data.str_path, db, "docs", payload=data.payload, index=False)["table_rows"] == ROWS
    t = everything(db, "docs")
    ids = Counter(t.column("id").to_pylist())
    assert t.num_rows == ROWS and set(ids) == set(data.str_ids) and max(ids.values()) == 1
    rows = data.rows_of("str")
    want = data.payload_rows()
    for r in t.select(["id", *data.payload.column_names]).to_pylist():
        assert {k: v for k, v in r.items() if k != "id"} == want[rows[r["id"]]]


def test_resume_after_the_process_is_killed(data, tmp_path):
    db, ckpt = tmp_path / "lance", tmp_path / "load.json"
    script = textwrap.dedent(
        f"""
        import os, signal
        from vectro.integrations import lancedb as vlance
        def die(done, total):
            if done >= {ROWS // 2}:
                os.kill(os.getpid(), signal.SIGKILL)
        vlance.load({str(data.u64_path)!r}, {str(db)!r}, "docs", checkpoint={str(ckpt)!r},
                    index=False, progress=die)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    s = vlance.load(data.u64_path, db, "docs", checkpoint=ckpt, index=False)
    assert s["skipped_rows"] == ROWS // 2 and s["table_rows"] == ROWS
    assert sorted(everything(db, "docs").column("id").to_pylist()) == sorted(int(i) for i in data.u64_ids)


def test_example_runs(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "lancedb_example.py"), "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "loaded 2000 rows into docs, index IVF_PQ" in r.stdout


def peak_rss_of_a_load(container, db):
    """The peak RSS (bytes) of a fresh process that loads ``container`` into LanceDB."""
    script = textwrap.dedent(
        f"""
        import resource
        from vectro.integrations import lancedb as vlance
        vlance.load({str(container)!r}, {str(db)!r}, "t", index=False)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(r.stdout.split()[-1])


def test_memory_holds_a_chunk_not_the_container(tmp_path):
    """A container 8 times bigger (205 MB of decoded rows more) barely moves the peak RSS
    of a load: rows are decoded a chunk at a time and each chunk's pages released."""
    import numpy as np

    import vectro

    rng = np.random.default_rng(1)
    paths = {}
    for rows in (25_000, 200_000):
        x = rng.standard_normal((rows, 256), dtype=np.float32)
        paths[rows] = tmp_path / f"{rows}.vectro"
        vectro.compress(x, paths[rows], codec="int8", chunk_rows=2000, fsync=False)
        del x
    small = peak_rss_of_a_load(paths[25_000], tmp_path / "small")
    big = peak_rss_of_a_load(paths[200_000], tmp_path / "big")
    decoded_more = (200_000 - 25_000) * 256 * 4
    assert big - small < decoded_more / 4, (small, big)


def test_an_id_column_in_the_payload_is_checked_against_the_ids_and_left_out(data, tmp_path):
    """As in the Parquet file a container was compressed from with --id-column."""
    from vectro import BadInputError

    with_ids = data.payload.add_column(0, "id", pa.array(data.str_ids))
    s = vlance.load(data.str_path, tmp_path / "a", "docs", payload=with_ids, index=False)
    assert s["payload_columns"] == data.payload.column_names
    t = everything(tmp_path / "a", "docs")
    assert t.column_names == ["id", "vector", *data.payload.column_names]
    assert t.column("id").to_pylist() == data.str_ids

    wrong = list(data.str_ids)
    wrong[2345] = "someone else"
    bad = data.payload.add_column(0, "id", pa.array(wrong))
    with pytest.raises(BadInputError, match="at row 2345 it holds 'someone else'"):
        vlance.load(data.str_path, tmp_path / "b", "docs", payload=bad, index=False)


def test_a_container_without_ids_is_loaded_with_its_row_numbers(data, tmp_path):
    """Without ids a row's id is its number in the whole input: a shard's rows keep theirs."""
    import vectro

    path = tmp_path / "part-{shard}.vectro"
    vectro.compress(data.x, path, codec="int8", chunk_rows=CHUNK, shard="1/2", fsync=False)
    (part,) = tmp_path.glob("part-*.vectro")
    with vectro.open(part) as c:
        first, n = c.first_row, len(c)
        assert c.id_kind == "none" and first > 0
    s = vlance.load(part, tmp_path / "lance", "docs", index=False)
    assert s["id_type"] == "uint64"
    assert everything(tmp_path / "lance", "docs").column("id").to_pylist() == list(range(first, first + n))
