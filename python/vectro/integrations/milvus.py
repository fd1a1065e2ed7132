"""Load a Vectro container into a Milvus collection (``pip install vectro[milvus]``).

>>> from vectro.integrations import milvus
>>> milvus.load("docs.vectro", "docs", uri="http://localhost:19530",
...             payload="docs.parquet", payload_columns=["title", "year"])  # doctest: +SKIP
>>> ids, scores = milvus.search("docs", queries, k=10)                       # doctest: +SKIP

The collection has a primary key ``id`` (INT64 for integer ids or a container without
ids, whose rows' numbers are then the ids; VARCHAR for string ids), a ``vector`` field
(FLOAT_VECTOR of the decoded rows) and one field per payload column. Rows go in by
window (one chunk of the container at a time); the index is built once they are all in,
then the collection is loaded for search. See docs/integrations.md.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import BadInputError, Container, UsageError
from . import _common as common

_METRIC = {"cos": "COSINE", "ip": "IP", "l2": "L2"}
_INT64_MAX = (1 << 63) - 1


def _pymilvus() -> Any:
    import warnings

    with warnings.catch_warnings():
        # pymilvus 2.3 imports pkg_resources, which warns that it is deprecated.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        return common.require("pymilvus", "milvus", "Milvus")


def _connect(uri: str, token: Optional[str], using: Optional[str]) -> str:
    pm = _pymilvus()
    if using is not None:
        return using
    alias = f"vectro:{uri}"
    if not pm.connections.has_connection(alias):
        kw = {"uri": uri}
        if token:
            kw["token"] = token
        pm.connections.connect(alias=alias, **kw)
    return alias


def _scalar_type(pm: Any, t: Any) -> Optional[Any]:
    import pyarrow as pa

    DataType = pm.DataType
    if pa.types.is_boolean(t):
        return DataType.BOOL
    if pa.types.is_int8(t):
        return DataType.INT8
    if pa.types.is_int16(t) or pa.types.is_uint8(t):
        return DataType.INT16
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return DataType.INT32
    if pa.types.is_integer(t):
        return DataType.INT64
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return DataType.FLOAT
    if pa.types.is_float64(t):
        return DataType.DOUBLE
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return DataType.VARCHAR
    return None


def _field_type(pm: Any, field: Any, max_string_length: int) -> Tuple[Any, Dict[str, Any]]:
    """The Milvus field of a payload column: the matching scalar; a list of scalars an
    ARRAY (at most 4096 elements a row); a struct JSON; a date, time or decimal VARCHAR
    (its text)."""
    import pyarrow as pa

    t = field.type
    if pa.types.is_dictionary(t):  # a categorical column: its values
        t = t.value_type
    DataType = pm.DataType
    kind = _scalar_type(pm, t)
    if kind == DataType.VARCHAR:
        return kind, {"max_length": max_string_length}
    if kind is not None:
        return kind, {}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        elem = _scalar_type(pm, t.value_type)
        if elem is not None:
            kw: Dict[str, Any] = {"element_type": elem, "max_capacity": 4096}
            if elem == DataType.VARCHAR:
                kw["max_length"] = max_string_length
            return DataType.ARRAY, kw
    elif pa.types.is_struct(t) or pa.types.is_map(t):
        return DataType.JSON, {}
    elif pa.types.is_temporal(t) or pa.types.is_decimal(t):
        return DataType.VARCHAR, {"max_length": max_string_length}
    raise BadInputError(
        f"payload column {field.name!r} has the type {t}, which no Milvus field holds; "
        "leave it out with payload_columns="
    )


def _column_values(table: Any, name: str, kind: Any, pm: Any, first_row: int) -> List[Any]:
    col = table.column(name)
    if col.null_count:
        import pyarrow.compute as pc

        row = pc.index(pc.is_null(col), True).as_py()
        raise BadInputError(
            f"payload column {name!r} is null at row {first_row + row}: Milvus fields "
            "cannot hold nulls; fill them, or leave the column out with payload_columns="
        )
    values = col.to_pylist()
    if kind == pm.DataType.JSON:
        # Dates, decimals and bytes inside a struct are not JSON: their text instead.
        return [json.loads(json.dumps(v, default=str)) for v in values]
    if kind == pm.DataType.VARCHAR and not isinstance(values[0] if values else "", str):
        return [str(v) for v in values]
    if kind == pm.DataType.INT64:
        big = next((i for i, v in enumerate(values) if v > _INT64_MAX), None)
        if big is not None:
            raise BadInputError(
                f"payload column {name!r} at row {first_row + big} holds {values[big]}, "
                "beyond Milvus's INT64"
            )
    return values


def load(
    container: Union[Container, common.PathLike],
    collection: str,
    *,
    uri: str = "http://localhost:19530",
    token: Optional[str] = None,
    using: Optional[str] = None,
    payload: Any = None,
    payload_columns: Optional[Sequence[str]] = None,
    metric: str = "cos",
    index: Optional[str] = "HNSW",
    index_params: Optional[Dict[str, Any]] = None,
    batch_rows: Optional[int] = None,
    checkpoint: Optional[common.PathLike] = None,
    overwrite: bool = False,
    progress: common.Progress = False,
    id_field: str = "id",
    vector_field: str = "vector",
    max_id_length: int = 512,
    max_string_length: int = 65535,
    binary: bool = False,
) -> Dict[str, Any]:
    """Load every row of ``container`` into the Milvus collection ``collection``.

    Args:
        container: a :class:`vectro.Container` or the path of one.
        collection: the collection; created if missing (an existing one must have the
            same id, vector and payload fields), dropped first with ``overwrite=True``.
        uri, token: the server (``using``: the alias of a ``pymilvus.connections``
            connection made beforehand, instead).
        payload: columns stored beside each vector, one row per container row in its
            order: a ``pyarrow.Table``, a pandas DataFrame, a dict of columns, or the path
            of a Parquet file (read by row group); ``payload_columns`` picks some.
            Default: the container's own payload columns, if it has any. Integers,
            floats and bools become the matching Milvus scalars, strings VARCHAR, other
            types (lists, structs, dates) JSON.
        metric: ``cos``, ``ip`` or ``l2``, as Vectro names them.
        index: the Milvus index built after loading: ``HNSW`` (default), ``FLAT``
            (exact search), ``IVF_FLAT``, ... or None for no index (and no load for
            search); ``index_params`` its build parameters.
        batch_rows: rows per insert (default and at most: one chunk of the container;
            with ``binary``, 4096 by default).
        checkpoint: a JSON file recording the rows the server acknowledged; a rerun with
            the same file after a failure or Ctrl-C skips them.
        overwrite: drop the collection first.
        progress: ``True`` for a line on stderr, or ``f(done_rows, total_rows)``.
        binary: store a ``binary`` container's sign bits as they are, in a BINARY_VECTOR
            field searched by Hamming distance (``metric`` is then ignored; the index is
            ``BIN_FLAT`` unless ``index`` names another binary one, such as
            ``BIN_IVF_FLAT``): dims/8 bytes a row instead of 4·dims. Only the plain
            ``binary`` codec, at dims a multiple of 8: ``binary:rotate=1`` and
            ``binary-itq`` rotate the rows first, which a query would need too. Search with
            ``search(..., binary=True)``.

    Rows are inserted, or upserted when they may be in the collection already (the first
    window after a checkpoint, and every window when loading into a non-empty collection
    without one): a rerun never makes two entities of one id.

    Returns:
        ``rows`` (this call wrote), ``skipped_rows`` (a checkpoint had), ``total_rows``,
        ``collection``, ``id_type``, ``payload_columns``, ``index``, ``seconds``.
    """
    t0 = time.monotonic()
    pm = _pymilvus()
    common.check_metric(metric)
    c, owned = common.open_container(container)
    try:
        alias = _connect(uri, token, using)
        src = common.PayloadSource(payload, payload_columns, c, (id_field, vector_field), id_field)
        string_ids = common.id_kind(c) == "string"
        if binary:
            if c.codec != "binary":
                raise UsageError(
                    f"binary=True needs a container of the plain binary codec, this one is "
                    f"{c.codec}: binary:rotate=1 and binary-itq rotate the rows first, which "
                    "Milvus would have to do to each query too; load the decoded rows instead"
                )
            if c.dims % 8:
                raise UsageError(f"binary=True needs dims a multiple of 8 (Milvus), not {c.dims}")
            if index == "HNSW":
                index = "BIN_FLAT"
        vtype = pm.DataType.BINARY_VECTOR if binary else pm.DataType.FLOAT_VECTOR
        fields = [
            pm.FieldSchema(id_field, pm.DataType.VARCHAR, is_primary=True, max_length=max_id_length)
            if string_ids
            else pm.FieldSchema(id_field, pm.DataType.INT64, is_primary=True),
            pm.FieldSchema(vector_field, vtype, dim=c.dims),
        ]
        kinds = []
        for f in src.fields:
            kind, kw = _field_type(pm, f, max_string_length)
            kinds.append((f.name, kind))
            fields.append(pm.FieldSchema(f.name, kind, **kw))
        schema = pm.CollectionSchema(fields, description=f"vectro container {c.path}")
        if overwrite and pm.utility.has_collection(collection, using=alias):
            pm.utility.drop_collection(collection, using=alias)
        existed = pm.utility.has_collection(collection, using=alias)
        if existed:
            coll = pm.Collection(collection, using=alias)
            _check_schema(coll, schema, collection)
            # num_entities counts sealed segments only: seal what a failed run left growing.
            coll.flush()
            nonempty = coll.num_entities > 0
        else:
            coll = pm.Collection(collection, schema, using=alias)
            nonempty = False
        ckpt = common.Checkpoint(checkpoint, c, f"milvus:{uri}/{collection}")
        start = ckpt.done_rows()
        if start and not existed:
            raise UsageError(
                f"{ckpt.path} says {start} rows were loaded, but collection {collection!r} "
                "does not exist: delete the checkpoint to load from the start"
            )
        batch_rows = common.check_batch_rows(batch_rows)
        reporter = common.Reporter(progress, len(c), f"milvus {collection}")
        first = [True]

        def write(a: int, b: int, ids: Any, rows: Any, table: Any) -> None:
            if string_ids:
                too_long = next(
                    (i for i, s in enumerate(ids) if len(s.encode()) > max_id_length), None
                )
                if too_long is not None:
                    raise BadInputError(
                        f"row {a + too_long}: id {ids[too_long][:80]!r}... is longer than "
                        f"max_id_length={max_id_length} bytes; pass a larger max_id_length"
                    )
                id_col: Any = ids
            else:
                if len(ids) and int(ids.max()) > _INT64_MAX:
                    raise BadInputError(
                        f"rows {a}..{b}: an id is beyond Milvus's INT64 primary key"
                    )
                id_col = ids.astype("int64").tolist()
            data = [id_col, [r.tobytes() for r in rows] if binary else rows]
            for name, kind in kinds:
                data.append(_column_values(table, name, kind, pm, a))
            if nonempty or (start and first[0]):
                coll.upsert(data)
            else:
                coll.insert(data)
            first[0] = False

        try:
            written = common.run_windows(
                c, src, start=start, batch_rows=batch_rows, write=write, checkpoint=ckpt,
                reporter=reporter, codes=binary,
            )
        finally:
            reporter.close()
        coll.flush()
        built = None
        if index is not None:
            if not coll.has_index():
                mtype = "HAMMING" if binary else _METRIC[metric]
                params = {"index_type": index, "metric_type": mtype}
                params["params"] = dict(index_params or _default_params(index))
                coll.create_index(vector_field, params)
            built = coll.index().params
            coll.load()
        return {
            "rows": written,
            "skipped_rows": start,
            "total_rows": len(c),
            "collection": collection,
            "id_type": "VARCHAR" if string_ids else "INT64",
            "vector_type": "BINARY_VECTOR" if binary else "FLOAT_VECTOR",
            "payload_columns": src.columns,
            "index": built,
            "seconds": time.monotonic() - t0,
        }
    finally:
        if owned:
            c.close()


def _default_params(index: str) -> Dict[str, Any]:
    if index == "HNSW":
        return {"M": 16, "efConstruction": 200}
    if "IVF" in index:
        return {"nlist": 128}
    return {}


def _check_schema(coll: Any, want: Any, name: str) -> None:
    have = {f.name: (f.dtype, f.params.get("dim")) for f in coll.schema.fields}
    for f in want.fields:
        got = have.get(f.name)
        if got is None or got[0] != f.dtype or got[1] != f.params.get("dim"):
            raise UsageError(
                f"collection {name!r} exists with other fields ({f.name} is "
                f"{'missing' if got is None else got[0].name}, the container needs "
                f"{f.dtype.name}); load into another collection, or pass overwrite=True"
            )


def search(
    collection: str,
    queries: Any,
    k: int = 10,
    *,
    uri: str = "http://localhost:19530",
    token: Optional[str] = None,
    using: Optional[str] = None,
    metric: str = "cos",
    params: Optional[Dict[str, Any]] = None,
    output_fields: Optional[Sequence[str]] = None,
    vector_field: str = "vector",
    binary: bool = False,
) -> Tuple[List[List[Any]], List[List[float]]]:
    """Search a loaded collection: the ids and scores (Milvus's distances: cosine or inner
    product similarity, or squared L2) of each query's ``k`` nearest rows, best first.
    With ``output_fields``, the ids are ``(id, {field: value})`` pairs. ``binary=True``
    searches a collection loaded with ``binary=True``: each float query becomes its sign
    bits (set for a value >= 0, as the binary codec encodes a row) and the scores are
    Hamming distances, as ``Container.search(..., hamming=True)`` gives."""
    import numpy as np

    pm = _pymilvus()
    alias = _connect(uri, token, using)
    coll = pm.Collection(collection, using=alias)
    q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32).reshape(-1, coll_dim(coll, vector_field)))
    mtype = _METRIC[common.check_metric(metric)]
    if binary:
        bits = np.packbits(q >= 0, axis=1, bitorder="little")
        q, mtype = [r.tobytes() for r in bits], "HAMMING"
    res = coll.search(
        q,
        vector_field,
        {"metric_type": mtype, "params": dict(params or {})},
        limit=k,
        output_fields=list(output_fields) if output_fields else None,
    )
    ids, scores = [], []
    for hits in res:
        if output_fields:
            ids.append([(h.id, {f: h.entity.get(f) for f in output_fields}) for h in hits])
        else:
            ids.append([h.id for h in hits])
        scores.append([h.distance for h in hits])
    return ids, scores


def coll_dim(coll: Any, vector_field: str) -> int:
    for f in coll.schema.fields:
        if f.name == vector_field:
            return int(f.params["dim"])
    raise UsageError(f"collection {coll.name!r} has no field {vector_field!r}")
