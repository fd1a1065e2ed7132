"""vectro.integrations.milvus against the Milvus standalone server of scripts/milvus_local.sh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from conftest import CHUNK, EXAMPLES, K, ROWS, Failing

from vectro.integrations import milvus

URI = os.environ.get("VECTRO_MILVUS_URI", "")


@pytest.fixture(scope="module", autouse=True)
def server():
    if not URI:
        pytest.fail("VECTRO_MILVUS_URI is not set: run scripts/test_integrations.sh (it starts Milvus)")


def everything(collection, fields):
    """Every entity of the collection (ids and fields), read back from the server."""
    from pymilvus import Collection, connections

    alias = f"vectro:{URI}"
    if not connections.has_connection(alias):
        connections.connect(alias=alias, uri=URI)
    coll = Collection(collection, using=alias)
    count = coll.query(expr="", output_fields=["count(*)"])[0]["count(*)"]
    pk = coll.schema.primary_field
    expr = 'id != ""' if pk.dtype.name == "VARCHAR" else "id >= 0"
    got = []
    it = coll.query_iterator(batch_size=1000, expr=expr, output_fields=["id", *fields])
    while True:
        page = it.next()
        if not page:
            break
        got.extend(page)
    it.close()
    return count, got


def test_string_ids_payload_and_recall(data):
    seen = []
    s = milvus.load(
        data.str_path, "t_str", uri=URI, payload=data.payload_path, index="FLAT",
        overwrite=True, progress=lambda done, total: seen.append((done, total)),
    )
    assert s["rows"] == ROWS and s["skipped_rows"] == 0 and s["id_type"] == "VARCHAR"
    assert seen[0] == (0, ROWS) and seen[-1] == (ROWS, ROWS)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == ROWS // CHUNK + 1

    cols = data.payload.column_names
    count, got = everything("t_str", cols)
    assert count == ROWS
    ids = Counter(e["id"] for e in got)
    assert len(got) == ROWS and set(ids) == set(data.str_ids) and max(ids.values()) == 1
    rows = data.rows_of("str")
    want = data.payload_rows()
    for e in got:
        assert {k: e[k] for k in cols} == want[rows[e["id"]]]

    hits, _ = milvus.search("t_str", data.queries, k=K, uri=URI)
    assert data.recall_of("str", hits) == pytest.approx(data.recall["str"], abs=0.005)


def test_integer_ids_dict_payload_and_recall(data):
    # A dict of columns; the titles dictionary-encoded, as a categorical column would be.
    payload = {"year": data.payload.column("year"), "title": data.payload.column("title").dictionary_encode()}
    s = milvus.load(data.u64_path, "t_u64", uri=URI, payload=payload, index="FLAT", overwrite=True)
    assert s["id_type"] == "INT64" and s["payload_columns"] == ["year", "title"]
    count, got = everything("t_u64", ["year", "title"])
    ids = Counter(e["id"] for e in got)
    assert count == ROWS and len(got) == ROWS and max(ids.values()) == 1
    assert set(ids) == {int(i) for i in data.u64_ids}
    rows = data.rows_of("u64")
    years, titles = data.payload.column("year").to_pylist(), data.payload.column("title").to_pylist()
    assert all(e["year"] == years[rows[e["id"]]] for e in got)
    assert all(e["title"] == titles[rows[e["id"]]] for e in got)
    hits, _ = milvus.search("t_u64", data.queries, k=K, uri=URI)
    assert data.recall_of("u64", hits) == pytest.approx(data.recall["u64"], abs=0.005)


def test_resume_after_a_failure_between_the_insert_and_the_checkpoint(data, tmp_path, monkeypatch):
    ckpt = tmp_path / "load.json"
    Failing(monkeypatch, after=3)
    with pytest.raises(RuntimeError, match="injected"):
        milvus.load(data.str_path, "t_resume", uri=URI, checkpoint=ckpt, index=None, overwrite=True)
    monkeypatch.undo()
    # Window 3 is in the collection, the checkpoint says 2: it is upserted again.
    s = milvus.load(data.str_path, "t_resume", uri=URI, checkpoint=ckpt, index="FLAT")
    assert s["skipped_rows"] == 2 * CHUNK and s["rows"] == ROWS - 2 * CHUNK
    count, got = everything("t_resume", [])
    assert count == ROWS and len(got) == ROWS and {e["id"] for e in got} == set(data.str_ids)
    # A rerun of a finished load writes nothing; without the checkpoint it upserts all.
    assert milvus.load(data.str_path, "t_resume", uri=URI, checkpoint=ckpt)["rows"] == 0
    assert milvus.load(data.str_path, "t_resume", uri=URI)["rows"] == ROWS
    count, got = everything("t_resume", [])
    assert count == ROWS and len(got) == ROWS


def test_resume_after_the_process_is_killed(data, tmp_path):
    ckpt = tmp_path / "load.json"
    script = textwrap.dedent(
        f"""
        import os, signal
        from vectro.integrations import milvus
        def die(done, total):
            if done >= {ROWS // 2}:
                os.kill(os.getpid(), signal.SIGKILL)
        milvus.load({str(data.u64_path)!r}, "t_kill", uri={URI!r}, checkpoint={str(ckpt)!r},
                    index=None, overwrite=True, progress=die)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    s = milvus.load(data.u64_path, "t_kill", uri=URI, checkpoint=ckpt, index="FLAT")
    assert s["skipped_rows"] == ROWS // 2 and s["rows"] == ROWS // 2
    count, got = everything("t_kill", [])
    assert count == ROWS and len(got) == ROWS
    assert {e["id"] for e in got} == {int(i) for i in data.u64_ids}


def test_rerun_without_a_checkpoint_after_the_process_is_killed(data):
    """Rows a killed run left unflushed are counted (the collection is flushed first), so
    the rerun upserts them instead of inserting a second copy."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from vectro.integrations import milvus
        def die(done, total):
            if done >= {ROWS // 2}:
                os.kill(os.getpid(), signal.SIGKILL)
        milvus.load({str(data.str_path)!r}, "t_kill2", uri={URI!r}, index=None, overwrite=True,
                    progress=die)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    s = milvus.load(data.str_path, "t_kill2", uri=URI, index="FLAT")
    assert s["rows"] == ROWS and s["skipped_rows"] == 0
    count, got = everything("t_kill2", [])
    ids = Counter(e["id"] for e in got)
    assert count == ROWS and len(got) == ROWS and max(ids.values()) == 1


def test_binary_codes_as_binary_vectors_searched_by_hamming(data):
    import numpy as np

    import vectro

    s = milvus.load(data.u64_path, "t_bin", uri=URI, binary=True, overwrite=True)
    assert s["vector_type"] == "BINARY_VECTOR" and s["index"]["index_type"] == "BIN_FLAT"
    count, got = everything("t_bin", [])
    assert count == ROWS and len(got) == ROWS and {e["id"] for e in got} == {int(i) for i in data.u64_ids}
    hits, dists = milvus.search("t_bin", data.queries, k=K, uri=URI, binary=True)
    with vectro.open(data.u64_path) as c:
        bits, _ = c.codes()
        want_ids, want_d = c.search(data.queries, K, hamming=True)
    qbits = np.packbits(data.queries >= 0, axis=1, bitorder="little")
    rows = data.rows_of("u64")
    for i in range(len(data.queries)):
        # The same K smallest Hamming distances as Vectro's search on the codes ...
        assert sorted(dists[i]) == sorted(want_d[i].tolist())
        # ... each the distance between the query's sign bits and the row's stored bits.
        for h, d in zip(hits[i], dists[i]):
            assert int(np.unpackbits(qbits[i] ^ bits[rows[h]]).sum()) == d
        # Rows closer than the K-th are found by both (ties at the K-th may differ).
        kth = max(dists[i])
        ours = {data.u64_ids[r] for r, d in zip(want_ids[i], want_d[i]) if d < kth}
        assert ours == {h for h, d in zip(hits[i], dists[i]) if d < kth}


def test_binary_vectors_need_the_plain_binary_codec(data):
    from vectro import UsageError

    with pytest.raises(UsageError, match="plain binary codec, this one is int4"):
        milvus.load(data.str_path, "t_bin2", uri=URI, binary=True)


def test_a_null_in_the_payload_is_refused_with_its_row(data):
    import pyarrow as pa

    from vectro import BadInputError

    year = [2000] * ROWS
    year[1234] = None
    with pytest.raises(BadInputError, match="'year' is null at row 1234"):
        milvus.load(data.str_path, "t_null", uri=URI, payload=pa.table({"year": year}), overwrite=True)


def test_a_payload_of_other_length_is_refused(data):
    import pyarrow as pa

    from vectro import BadInputError

    with pytest.raises(BadInputError, match="has 3 rows but the container has 4000"):
        milvus.load(data.str_path, "t_bad", uri=URI, payload=pa.table({"a": [1, 2, 3]}))


def test_example_runs(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "milvus_example.py"), "--uri", URI, "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "loaded 2000 rows into vectro_example (VARCHAR ids)" in r.stdout
