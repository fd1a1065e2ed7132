"""vectro.integrations.qdrant against Qdrant's engine in-process (qdrant-edge-py), and the
same loader through qdrant_client."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter

import pytest
from qdrant_edge import EdgeShard, ScrollRequest

from conftest import CHUNK, EXAMPLES, K, ROWS, Failing

from vectro.integrations import qdrant


def everything(shard):
    """Every point of the shard: (point id, payload)."""
    out, offset = [], None
    while True:
        page, offset = shard.scroll(ScrollRequest(offset=offset, limit=1000, with_payload=True))
        out.extend((p.id, dict(p.payload or {})) for p in page)
        if offset is None:
            return out


def test_string_ids_payload_and_recall(data, tmp_path):
    seen = []
    path = tmp_path / "shard"
    s = qdrant.load(
        data.str_path, path, payload=data.payload_path,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert s["rows"] == ROWS and s["points"] == ROWS and s["id_type"] == "uuid5"
    assert seen[0] == (0, ROWS) and seen[-1] == (ROWS, ROWS) and len(seen) == ROWS // CHUNK + 1
    shard = EdgeShard.load(str(path))
    try:
        pts = everything(shard)
        assert len(pts) == ROWS
        ids = Counter(p["id"] for _, p in pts)
        assert set(ids) == set(data.str_ids) and max(ids.values()) == 1
        rows = data.rows_of("str")
        want = data.payload_rows()
        for pid, p in pts:
            orig = p.pop("id")
            # The point id is the UUIDv5 of the string id, as documented.
            assert str(pid) == str(uuid.uuid5(qdrant.ID_NAMESPACE, orig)) == qdrant.point_id(orig)
            w = want[rows[orig]]
            # Qdrant stores the payload as JSON and reads a float64 back within one ulp.
            assert p["score"] == pytest.approx(w.pop("score"), rel=1e-15, abs=0)
            del p["score"]
            assert p == w
        hits, _ = qdrant.search(shard, data.queries, k=K, exact=True)
        assert data.recall_of("str", hits) == pytest.approx(data.recall["str"], abs=0.005)
        # Through the HNSW index the optimizers built: close to the exact search.
        approx, _ = qdrant.search(shard, data.queries, k=K)
        assert data.recall_of("str", approx) >= data.recall["str"] - 0.05
    finally:
        shard.close()


def test_integer_ids_dict_payload_and_recall(data, tmp_path):
    path = tmp_path / "shard"
    payload = {"year": data.payload.column("year"), "tags": data.payload.column("tags")}
    s = qdrant.load(data.u64_path, path, payload=payload, metric="cos")
    assert s["id_type"] == "u64" and s["points"] == ROWS
    shard = EdgeShard.load(str(path))
    try:
        pts = everything(shard)
        ids = Counter(pid for pid, _ in pts)
        assert len(pts) == ROWS and max(ids.values()) == 1
        assert set(ids) == {int(i) for i in data.u64_ids}
        rows = data.rows_of("u64")
        years, tags = data.payload.column("year").to_pylist(), data.payload.column("tags").to_pylist()
        for pid, p in pts:
            assert p == {"id": pid, "year": years[rows[pid]], "tags": tags[rows[pid]]}
        hits, _ = qdrant.search(shard, data.queries, k=K, exact=True)
        assert data.recall_of("u64", hits) == pytest.approx(data.recall["u64"], abs=0.005)
    finally:
        shard.close()


def test_resume_after_a_failure_between_the_upsert_and_the_checkpoint(data, tmp_path, monkeypatch):
    path, ckpt = tmp_path / "shard", tmp_path / "load.json"
    Failing(monkeypatch, after=3)
    with pytest.raises(RuntimeError, match="injected"):
        qdrant.load(data.str_path, path, checkpoint=ckpt, optimize=False)
    monkeypatch.undo()
    s = qdrant.load(data.str_path, path, checkpoint=ckpt)
    assert s["skipped_rows"] == 2 * CHUNK and s["rows"] == ROWS - 2 * CHUNK and s["points"] == ROWS
    # Without the checkpoint every point is upserted again: still one per id.
    assert qdrant.load(data.str_path, path)["points"] == ROWS
    shard = EdgeShard.load(str(path))
    try:
        pts = everything(shard)
        assert len(pts) == ROWS and {p["id"] for _, p in pts} == set(data.str_ids)
    finally:
        shard.close()


def test_resume_after_the_process_is_killed(data, tmp_path):
    path, ckpt = tmp_path / "shard", tmp_path / "load.json"
    script = textwrap.dedent(
        f"""
        import os, signal
        from vectro.integrations import qdrant
        def die(done, total):
            if done >= {ROWS // 2}:
                os.kill(os.getpid(), signal.SIGKILL)
        qdrant.load({str(data.u64_path)!r}, {str(path)!r}, checkpoint={str(ckpt)!r}, progress=die)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    s = qdrant.load(data.u64_path, path, checkpoint=ckpt)
    assert s["skipped_rows"] == ROWS // 2 and s["points"] == ROWS
    shard = EdgeShard.load(str(path))
    try:
        assert {pid for pid, _ in everything(shard)} == {int(i) for i in data.u64_ids}
    finally:
        shard.close()


@pytest.mark.filterwarnings("ignore:Local mode performs exact")
def test_the_same_loader_through_qdrant_client(data):
    """The QdrantClient code path (a URL in production), here on qdrant_client's own local
    mode (no Qdrant server binary is available to the tests): the calls a server gets."""
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    try:
        s = qdrant.load(data.str_path, client, collection="docs", payload=data.payload, batch_rows=1000)
        assert s["points"] == ROWS and s["rows"] == ROWS
        pts, offset = [], None
        while True:
            page, offset = client.scroll("docs", offset=offset, limit=1000, with_payload=True)
            pts.extend(page)
            if offset is None:
                break
        assert sorted(p.payload["id"] for p in pts) == sorted(data.str_ids)
        assert all(str(p.id) == qdrant.point_id(p.payload["id"]) for p in pts)
        hits, _ = qdrant.search(client, data.queries, k=K, collection="docs", exact=True)
        assert data.recall_of("str", hits) == pytest.approx(data.recall["str"], abs=0.005)
    finally:
        client.close()


def test_example_runs(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "qdrant_example.py"), "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "loaded 2000 rows as 2000 points (uuid5 ids)" in r.stdout
