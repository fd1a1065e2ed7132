"""Load a Vectro container into Qdrant (``pip install vectro[qdrant]``).

Two targets, one code path:

- a Qdrant Edge shard, Qdrant's engine in-process (``qdrant-edge-py``, no server): pass
  the shard's directory (created if missing) or an open ``qdrant_edge.EdgeShard``;
- a Qdrant server: pass ``qdrant_client.QdrantClient(url="http://host:6333")`` and
  ``collection=`` (created if missing).

>>> from vectro.integrations import qdrant
>>> qdrant.load("docs.vectro", "docs.qdrant", payload="docs.parquet")       # doctest: +SKIP
>>> from qdrant_client import QdrantClient
>>> qdrant.load("docs.vectro", QdrantClient(url="http://localhost:6333"),
...             collection="docs")                                           # doctest: +SKIP

Point ids: Qdrant takes unsigned integers or UUIDs. Integer ids (and the rows' numbers of
a container without ids) are the point ids as they are; a string id becomes
``uuid.uuid5(ID_NAMESPACE, id)`` (:func:`point_id`), the same UUID in every run and on
every machine. Every point's payload also holds the original id under ``id_key``
(``"id"`` by default), which :func:`search` returns. See docs/integrations.md.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import Container, UsageError
from . import _common as common

#: The namespace of the UUIDv5 point ids of string ids:
#: ``uuid5(NAMESPACE_URL, "https://github.com/vectro/ids")``, that is
#: ``bbc46312-79a8-5233-9995-455c0d63567b``.
ID_NAMESPACE = uuid.UUID("bbc46312-79a8-5233-9995-455c0d63567b")

_DISTANCE = {"cos": "Cosine", "ip": "Dot", "l2": "Euclid"}


def point_id(id: Union[int, str]) -> Union[int, str]:  # noqa: A002 - the id
    """The Qdrant point id of a container id: an integer as it is, a str as the text of
    ``uuid.uuid5(ID_NAMESPACE, id)``."""
    if isinstance(id, str):
        return str(uuid.uuid5(ID_NAMESPACE, id))
    return int(id)


class _Edge:
    def __init__(self, shard: Any, owned: bool) -> None:
        self.qe = common.require("qdrant_edge", "qdrant", "Qdrant Edge (qdrant-edge-py)")
        self.shard = shard
        self.owned = owned

    def upsert(self, points: List[Tuple[Any, List[float], Dict[str, Any]]]) -> None:
        qe = self.qe
        op = qe.UpdateOperation.upsert_points([qe.Point(i, v, p) for i, v, p in points])
        self.shard.update(op)

    def finish(self, optimize: bool) -> None:
        self.shard.flush()
        if optimize:
            self.shard.optimize()

    def count(self) -> int:
        return int(self.shard.count(self.qe.CountRequest(exact=True)))

    def close(self) -> None:
        if self.owned:
            self.shard.close()


class _Client:
    def __init__(self, client: Any, collection: str) -> None:
        self.models = common.require("qdrant_client.models", "qdrant", "Qdrant (qdrant-client)")
        self.client = client
        self.collection = collection

    def upsert(self, points: List[Tuple[Any, List[float], Dict[str, Any]]]) -> None:
        m = self.models
        self.client.upsert(
            self.collection,
            points=[m.PointStruct(id=i, vector=v, payload=p) for i, v, p in points],
            wait=True,
        )

    def finish(self, optimize: bool) -> None:
        pass

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def close(self) -> None:
        pass


def _target(target: Any, collection: Optional[str], dims: int, metric: str, overwrite: bool):
    """An _Edge or _Client over ``target``, its collection or shard made if missing."""
    if isinstance(target, (str, os.PathLike)):
        qe = common.require("qdrant_edge", "qdrant", "Qdrant Edge (qdrant-edge-py)")
        path = os.fspath(target)
        if overwrite and os.path.isdir(path):
            import shutil

            shutil.rmtree(path)
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dims, distance=getattr(qe.Distance, _DISTANCE[metric]))
        )
        if os.path.isdir(path) and os.listdir(path):
            shard = qe.EdgeShard.load(path)
        else:
            shard = qe.EdgeShard.create(path, config)
        return _Edge(shard, True), path
    if type(target).__name__ == "EdgeShard":
        if overwrite:
            raise UsageError("overwrite=True needs the shard's path, not an open EdgeShard")
        return _Edge(target, False), "<EdgeShard>"
    if hasattr(target, "upsert") and hasattr(target, "collection_exists"):
        if not collection:
            raise UsageError("loading through a QdrantClient needs collection=")
        m = common.require("qdrant_client.models", "qdrant", "Qdrant (qdrant-client)")
        if overwrite and target.collection_exists(collection):
            target.delete_collection(collection)
        if not target.collection_exists(collection):
            target.create_collection(
                collection,
                vectors_config=m.VectorParams(
                    size=dims, distance=getattr(m.Distance, _DISTANCE[metric].upper())
                ),
            )
        return _Client(target, collection), f"{getattr(target, 'init_options', {}).get('url') or 'client'}/{collection}"
    raise TypeError(
        "target must be the path of a Qdrant Edge shard, a qdrant_edge.EdgeShard or a "
        f"qdrant_client.QdrantClient, not {type(target).__name__}"
    )


def _json_safe(fields: Any) -> bool:
    import pyarrow as pa

    def ok(t: Any) -> bool:
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return ok(t.value_type)
        if pa.types.is_struct(t):
            return all(ok(t.field(i).type) for i in range(t.num_fields))
        return (
            pa.types.is_boolean(t)
            or pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_null(t)
        )

    return all(ok(f.type) for f in fields)


def load(
    container: Union[Container, common.PathLike],
    target: Any,
    *,
    collection: Optional[str] = None,
    payload: Any = None,
    payload_columns: Optional[Sequence[str]] = None,
    metric: str = "cos",
    batch_rows: Optional[int] = None,
    checkpoint: Optional[common.PathLike] = None,
    overwrite: bool = False,
    optimize: bool = True,
    progress: common.Progress = False,
    id_key: str = "id",
) -> Dict[str, Any]:
    """Upsert every row of ``container`` as a point of ``target``.

    Args:
        container: a :class:`vectro.Container` or the path of one.
        target: the directory of a Qdrant Edge shard (created with the container's dims
            and ``metric`` if missing or empty; ``overwrite=True`` removes it first), an
            open ``qdrant_edge.EdgeShard``, or a ``qdrant_client.QdrantClient`` with
            ``collection=`` (created if missing; dropped first with ``overwrite=True``).
        payload, payload_columns: columns stored in each point's payload, one row per
            container row in its order: a ``pyarrow.Table``, a pandas DataFrame, a dict of
            columns, or the path of a Parquet file (read by row group). Default: the
            container's own payload columns, if it has any.
        metric: ``cos``, ``ip`` or ``l2`` (Qdrant's Cosine, Dot, Euclid).
        batch_rows: points per upsert (default and at most: one chunk of the container).
        checkpoint: a JSON file recording the rows Qdrant acknowledged; a rerun with the
            same file skips them. Without it a rerun upserts every point again: still no
            duplicate, as a point id is a function of the container's id.
        optimize: run the Edge shard's optimizers (index building) at the end.
        progress: ``True`` for a line on stderr, or ``f(done_rows, total_rows)``.
        id_key: the payload key holding the original id.

    Returns:
        ``rows`` (this call wrote), ``skipped_rows``, ``total_rows``, ``points`` (the
        target's count afterwards), ``target``, ``id_type``, ``payload_columns``,
        ``seconds``.
    """
    t0 = time.monotonic()
    common.check_metric(metric)
    c, owned = common.open_container(container)
    try:
        src = common.PayloadSource(payload, payload_columns, c, (id_key,), id_key)
        tgt, name = _target(target, collection, c.dims, metric, overwrite)
        try:
            string_ids = common.id_kind(c) == "string"
            safe = _json_safe(src.fields)
            ckpt = common.Checkpoint(checkpoint, c, f"qdrant:{name}")
            start = ckpt.done_rows()
            reporter = common.Reporter(progress, len(c), f"qdrant {name}")

            def write(a: int, b: int, ids: Any, rows: Any, table: Any) -> None:
                docs = table.to_pylist() if table is not None else [{} for _ in range(b - a)]
                if not safe:
                    docs = [json.loads(json.dumps(d, default=str)) for d in docs]
                vecs = rows.tolist()
                pts = []
                for i, doc in enumerate(docs):
                    orig = ids[i] if string_ids else int(ids[i])
                    doc[id_key] = orig
                    pts.append((point_id(orig), vecs[i], doc))
                tgt.upsert(pts)

            try:
                written = common.run_windows(
                    c, src, start=start, batch_rows=common.check_batch_rows(batch_rows),
                    write=write, checkpoint=ckpt, reporter=reporter,
                )
            finally:
                reporter.close()
            tgt.finish(optimize)
            return {
                "rows": written,
                "skipped_rows": start,
                "total_rows": len(c),
                "points": tgt.count(),
                "target": name,
                "id_type": "uuid5" if string_ids else "u64",
                "payload_columns": src.columns,
                "seconds": time.monotonic() - t0,
            }
        finally:
            tgt.close()
    finally:
        if owned:
            c.close()


def search(
    target: Any,
    queries: Any,
    k: int = 10,
    *,
    collection: Optional[str] = None,
    exact: bool = False,
    with_payload: bool = False,
    id_key: str = "id",
) -> Tuple[List[List[Any]], List[List[float]]]:
    """The ``k`` nearest points of each query: their original ids (from ``id_key`` in the
    payload) and Qdrant's scores, best first. ``exact=True`` scans every point instead of
    the HNSW index. With ``with_payload``, the ids are ``(id, payload)`` pairs.
    ``target`` is an open ``EdgeShard`` or a ``QdrantClient`` with ``collection=``."""
    import numpy as np

    q = np.asarray(queries, dtype=np.float32)
    q = q.reshape(1, -1) if q.ndim == 1 else q
    out_ids, out_scores = [], []
    if type(target).__name__ == "EdgeShard":
        qe = common.require("qdrant_edge", "qdrant", "Qdrant Edge (qdrant-edge-py)")
        results = [
            target.query(
                qe.QueryRequest(
                    limit=k,
                    query=qe.Query.Nearest(row),
                    params=qe.SearchParams(exact=exact),
                    with_payload=True,
                )
            )
            for row in q.tolist()
        ]
    else:
        m = common.require("qdrant_client.models", "qdrant", "Qdrant (qdrant-client)")
        if not collection:
            raise UsageError("searching through a QdrantClient needs collection=")
        results = [
            target.query_points(
                collection,
                query=row,
                limit=k,
                search_params=m.SearchParams(exact=exact),
                with_payload=True,
            ).points
            for row in q.tolist()
        ]
    for hits in results:
        ids = []
        for h in hits:
            p = dict(h.payload or {})
            orig = p.pop(id_key, h.id)
            ids.append((orig, p) if with_payload else orig)
        out_ids.append(ids)
        out_scores.append([float(h.score) for h in hits])
    return out_ids, out_scores
