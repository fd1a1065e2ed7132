"""Load a Vectro container into an embedded LanceDB table (``pip install vectro[lancedb]``).

>>> from vectro.integrations import lancedb as vlance
>>> vlance.load("docs.vectro", "./lance", "docs", payload="docs.parquet")   # doctest: +SKIP
>>> ids, distances = vlance.search("./lance", "docs", queries, k=10)        # doctest: +SKIP

The table has ``id`` (``string`` for string ids, else ``uint64``: the stored ids, or the
rows' numbers of a container without ids), ``vector`` (``fixed_size_list<float32>[dims]``,
the decoded rows) and one column per payload column, Arrow types kept. Each window of
rows (one chunk of the container) is one commit of the table; an IVF_PQ index is built
once all rows are in. See docs/integrations.md.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import Container, UsageError
from . import _common as common

_METRIC = {"cos": "cosine", "ip": "dot", "l2": "l2"}


def _lancedb() -> Any:
    return common.require("lancedb", "lancedb", "LanceDB")


def _connect(db: Any) -> Any:
    if isinstance(db, (str, os.PathLike)):
        return _lancedb().connect(os.fspath(db))
    return db


def _open(conn: Any, name: str) -> Any:
    try:
        return conn.open_table(name)
    except (ValueError, FileNotFoundError):
        return None


def load(
    container: Union[Container, common.PathLike],
    db: Any,
    table: str,
    *,
    payload: Any = None,
    payload_columns: Optional[Sequence[str]] = None,
    metric: str = "cos",
    index: bool = True,
    num_partitions: Optional[int] = None,
    num_sub_vectors: Optional[int] = None,
    batch_rows: Optional[int] = None,
    checkpoint: Optional[common.PathLike] = None,
    overwrite: bool = False,
    progress: common.Progress = False,
    id_field: str = "id",
    vector_field: str = "vector",
) -> Dict[str, Any]:
    """Append every row of ``container`` to the LanceDB table ``table`` of ``db``.

    Args:
        container: a :class:`vectro.Container` or the path of one.
        db: a LanceDB URI or directory (``lancedb.connect`` is called), or a connection.
        table: the table; created if missing (an existing one must have the same
            columns), dropped first with ``overwrite=True``.
        payload, payload_columns: columns stored beside each vector, one row per
            container row in its order: a ``pyarrow.Table``, a pandas DataFrame, a dict of
            columns, or the path of a Parquet file (read by row group). Default: the
            container's own payload columns, if it has any.
        metric: ``cos``, ``ip`` or ``l2`` (LanceDB's cosine, dot, l2), for the index.
        index: build an IVF_PQ index on the vectors at the end (``num_partitions``,
            ``num_sub_vectors``: its parameters, by default LanceDB's); PQ training needs
            at least 256 rows.
        batch_rows: rows per commit (default and at most: one chunk of the container).
        checkpoint: a JSON file recording the rows committed; a rerun with the same file
            skips them.
        overwrite: drop the table first.
        progress: ``True`` for a line on stderr, or ``f(done_rows, total_rows)``.

    Each window is appended in one commit, or merged on ``id`` (an upsert) when it may be
    in the table already: the first window after a checkpoint, and every window when
    loading into a non-empty table without one. A rerun never makes two rows of one id.

    Returns:
        ``rows`` (this call wrote), ``skipped_rows``, ``total_rows``, ``table_rows``,
        ``table``, ``id_type``, ``payload_columns``, ``index``, ``seconds``.
    """
    import pyarrow as pa

    t0 = time.monotonic()
    common.check_metric(metric)
    conn = _connect(db)
    c, owned = common.open_container(container)
    try:
        src = common.PayloadSource(payload, payload_columns, c, (id_field, vector_field), id_field)
        string_ids = common.id_kind(c) == "string"
        fields = [
            pa.field(id_field, pa.string() if string_ids else pa.uint64(), nullable=False),
            pa.field(vector_field, pa.list_(pa.float32(), c.dims), nullable=False),
        ]
        fields += src.fields
        schema = pa.schema(fields)
        if overwrite and _open(conn, table) is not None:
            conn.drop_table(table)
        tbl = _open(conn, table)
        existed = tbl is not None
        if existed:
            have = tbl.schema
            if [(f.name, f.type) for f in have] != [(f.name, f.type) for f in schema]:
                raise UsageError(
                    f"table {table!r} exists with the columns {have}, the container needs "
                    f"{schema}; load into another table, or pass overwrite=True"
                )
            nonempty = tbl.count_rows() > 0
        else:
            tbl = conn.create_table(table, schema=schema)
            nonempty = False
        ckpt = common.Checkpoint(checkpoint, c, f"lancedb:{getattr(conn, 'uri', conn)}/{table}")
        start = ckpt.done_rows()
        if start and not existed:
            raise UsageError(
                f"{ckpt.path} says {start} rows were loaded, but table {table!r} does not "
                "exist: delete the checkpoint to load from the start"
            )
        reporter = common.Reporter(progress, len(c), f"lancedb {table}")
        first = [True]

        def write(a: int, b: int, ids: Any, rows: Any, payload_t: Any) -> None:
            cols = [
                pa.array(ids, type=schema.field(id_field).type),
                pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), c.dims),
            ]
            if payload_t is not None:
                cols += [payload_t.column(n).combine_chunks() for n in src.columns]
            batch = pa.Table.from_arrays(cols, schema=schema)
            if nonempty or (start and first[0]):
                (
                    tbl.merge_insert(id_field)
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(batch)
                )
            else:
                tbl.add(batch)
            first[0] = False

        try:
            written = common.run_windows(
                c, src, start=start, batch_rows=common.check_batch_rows(batch_rows),
                write=write, checkpoint=ckpt, reporter=reporter,
            )
        finally:
            reporter.close()
        built = None
        if index:
            from lancedb.index import IvfPq

            config = IvfPq(
                distance_type=_METRIC[metric],
                num_partitions=num_partitions,
                num_sub_vectors=num_sub_vectors,
            )
            tbl.create_index(vector_field, config=config)
            built = "IVF_PQ"
        return {
            "rows": written,
            "skipped_rows": start,
            "total_rows": len(c),
            "table_rows": tbl.count_rows(),
            "table": table,
            "id_type": "string" if string_ids else "uint64",
            "payload_columns": src.columns,
            "index": built,
            "seconds": time.monotonic() - t0,
        }
    finally:
        if owned:
            c.close()


def search(
    db: Any,
    table: str,
    queries: Any,
    k: int = 10,
    *,
    metric: str = "cos",
    exact: bool = False,
    nprobes: Optional[int] = None,
    refine_factor: Optional[int] = None,
    columns: Optional[Sequence[str]] = None,
    id_field: str = "id",
    vector_field: str = "vector",
) -> Tuple[List[List[Any]], List[List[float]]]:
    """The ids and LanceDB distances (cosine: ``1 - cos``; dot: ``-ip``; l2: squared) of
    each query's ``k`` nearest rows, nearest first. ``exact=True`` scans every row
    instead of the index. With ``columns``, the ids are ``(id, {column: value})`` pairs."""
    import numpy as np

    tbl = _connect(db).open_table(table)
    q = np.asarray(queries, dtype=np.float32)
    q = q.reshape(1, -1) if q.ndim == 1 else q
    out_ids, out_d = [], []
    for row in q:
        s = tbl.search(row, vector_column_name=vector_field).metric(_METRIC[metric]).limit(k)
        if exact:
            s = s.bypass_vector_index()
        else:
            if nprobes is not None:
                s = s.nprobes(nprobes)
            if refine_factor is not None:
                s = s.refine_factor(refine_factor)
        s = s.select([id_field, *(columns or []), "_distance"])
        t = s.to_arrow()
        ids = t.column(id_field).to_pylist()
        if columns:
            extra = [t.column(n).to_pylist() for n in columns]
            ids = [(i, {n: v[j] for n, v in zip(columns, extra)}) for j, i in enumerate(ids)]
        out_ids.append(ids)
        out_d.append(t.column("_distance").to_pylist())
    return out_ids, out_d
