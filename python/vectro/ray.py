"""Compress a Ray ``Dataset`` of embeddings in parallel: one shard per block, then merged.

>>> import ray, vectro.ray                                           # doctest: +SKIP
>>> ds = ray.data.read_parquet("s3://bucket/embeddings/")            # doctest: +SKIP
>>> vectro.ray.compress_dataset(ds, "emb.vectro", column="embedding", id_column="doc_id")  # doctest: +SKIP

The result is byte-identical to ``vectro.compress`` of the same rows (in the dataset's
order) in one process with the same options. Needs Ray Data: ``pip install vectro[ray]``.
See docs/ray.md.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple

try:
    import ray
    from ray.data.block import BlockAccessor
except ImportError as e:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "vectro.ray needs Ray Data, which is not installed: pip install vectro[ray]"
    ) from e

import numpy as np

import vectro

__all__ = ["compress_dataset", "shard_plan"]

# As the library's default (encode::default_chunk_rows): about 4 MiB of float32 a chunk.
_TARGET_CHUNK_BYTES = 4 << 20
# Codecs that train on a sample of the whole input: each shard would train on its own rows.
_TRAINED = ("pq", "opq", "binary-itq", "auto")


def default_chunk_rows(dims: int) -> int:
    """The rows per chunk ``vectro.compress`` picks for rows of ``dims`` dims."""
    return max(1, min(_TARGET_CHUNK_BYTES // (dims * 4), 2**32 - 1))


def shard_plan(rows: int, chunk_rows: int, shards: int) -> List[Tuple[int, int]]:
    """The row range ``[start, end)`` of each of ``shards`` shards of ``rows`` rows, as
    ``compress(..., shard="K/N")`` cuts them: shard K gets chunks ⌊K·C/N⌋..⌊(K+1)·C/N⌋ of
    the C chunks."""
    chunks = -(-rows // chunk_rows)
    if not 1 <= shards <= chunks:
        raise ValueError(f"{shards} shards of {chunks} chunks: use 1 to {chunks} shards")
    at = [k * chunks // shards for k in range(shards + 1)]
    return [(at[k] * chunk_rows, min(at[k + 1] * chunk_rows, rows)) for k in range(shards)]


def _get(refs: Any) -> Any:
    """``ray.get``, raising a task's own exception (a ``vectro.BadInputError`` naming the
    row, a ``ValueError`` naming the column) rather than Ray's wrapper of it."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


def _column_array(block: Any, column: str, lo: int, hi: int) -> np.ndarray:
    acc = BlockAccessor.for_block(block)
    if column not in acc.column_names():
        raise ValueError(f"the dataset has no column {column!r} (it has {acc.column_names()})")
    part = BlockAccessor.for_block(acc.slice(lo, hi, copy=False)).to_numpy(column)
    if part.dtype == object:  # a column of lists: one array per row
        part = np.stack([np.asarray(v) for v in part]) if len(part) else part
    if part.ndim != 2:
        raise ValueError(
            f"column {column!r} holds arrays of shape {part.shape[1:]}; expected one vector a row"
        )
    return part


@ray.remote
def _describe(block: Any, column: str) -> Tuple[int, int, str]:
    n = BlockAccessor.for_block(block).num_rows()
    if n == 0:
        return 0, 0, ""
    a = _column_array(block, column, 0, 1)
    return n, int(a.shape[1]), a.dtype.str


@ray.remote
def _ids(block: Any, id_column: str) -> List[Any]:
    acc = BlockAccessor.for_block(block)
    if id_column not in acc.column_names():
        raise ValueError(f"the dataset has no id column {id_column!r} (it has {acc.column_names()})")
    return acc.to_arrow().column(id_column).to_pylist()


def _virtual_rows(rows: int, dims: int, dtype: np.dtype) -> np.ndarray:
    """A zero-filled (rows, dims) array that costs memory only where it is written: an
    anonymous private mapping, without swap reservation where the OS has the flag."""
    nbytes = rows * dims * dtype.itemsize
    flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", getattr(mmap, "MAP_ANON", 0))
    if hasattr(os, "uname") and os.uname().sysname == "Linux":
        flags |= getattr(mmap, "MAP_NORESERVE", 0x4000)
    mm = mmap.mmap(-1, nbytes, flags=flags)
    return np.frombuffer(mm, dtype=dtype, count=rows * dims).reshape(rows, dims)


@ray.remote
def _compress_shard(
    k: int,
    n: int,
    pieces: List[Tuple[Any, int, int]],
    total: int,
    dims: int,
    dtype: str,
    row_range: Tuple[int, int],
    column: str,
    out: str,
    options: Dict[str, Any],
) -> Dict[str, Any]:
    # The shard's rows go where they are in the whole input; the rest of the array is
    # never written nor read (compress reads only this shard's chunks), so it costs
    # address space, not memory. Same name, size and dtype as the whole: the same header.
    x = _virtual_rows(total, dims, np.dtype(dtype))
    at = row_range[0]
    for ref, lo, hi in pieces:
        block = ray.get(ref)
        part = _column_array(block, column, lo, hi)
        if part.shape[1] != dims:
            raise ValueError(f"column {column!r}: rows of {part.shape[1]} dims among rows of {dims}")
        x[at : at + (hi - lo)] = part
        at += hi - lo
    assert at == row_range[1]
    return vectro.compress(x, out, shard=f"{k}/{n}", **options)


def compress_dataset(
    ds: "ray.data.Dataset",
    out: "str | os.PathLike[str]",
    codec: Optional[str] = None,
    *,
    column: Optional[str] = None,
    id_column: Optional[str] = None,
    shards: Optional[int] = None,
    chunk_rows: Optional[int] = None,
    codebook: "str | os.PathLike[str] | None" = None,
    zstd: Optional[int] = None,
    name: str = "<ray-dataset>",
    parts_dir: "str | os.PathLike[str] | None" = None,
    keep_parts: bool = False,
    force: bool = False,
    fsync: bool = True,
    threads_per_shard: int = 1,
) -> Dict[str, Any]:
    """Compress the vectors of ``ds`` into the container ``out``, one Ray task per shard.

    The dataset's blocks are cut into ``shards`` shards (default: as many as it has
    blocks, at most one per chunk) on chunk boundaries, each shard's rows gathered from the
    blocks that hold them and compressed as ``compress(..., shard="K/N")`` would compress
    it, then the shards are merged (``vectro.merge``). The result is byte-identical to
    ``vectro.compress(rows, out, codec, ids=ids, name=name, chunk_rows=chunk_rows, ...)``
    in one process, ``rows`` being the dataset's vectors in its order.

    Args:
        ds: a Ray Dataset with one vector a row (a tensor column, or a list column).
        out: the container to write; it appears only when complete.
        codec: as :func:`vectro.compress`. pq, opq and binary-itq need ``codebook`` (a
            ``.vcb`` from :func:`vectro.train`, trained once for all shards); ``auto`` is
            not available (it samples the whole input).
        column: the vector column (default: the dataset's only column, else ``embedding``
            or ``data`` if present).
        id_column: a column of ids (non-negative integers or str) stored with the rows.
            The ids are gathered on the driver (one list of all ids), written to a file
            every shard reads, as ``compress --ids`` takes them.
        shards: the number of shards (default: the number of blocks, capped by chunks).
        chunk_rows, zstd: as :func:`vectro.compress`.
        name: how the input is named in the container's metadata (``source``).
        parts_dir: where the shards go (default: a temporary directory beside ``out``,
            removed at the end unless ``keep_parts``). A shard already complete there
            (verified) is kept, not compressed again: after a failure, the same call with
            the same ``parts_dir`` redoes only the missing shards.
        force: overwrite an existing ``out``.
        fsync: sync the shards and the output before they are renamed into place.
        threads_per_shard: encoder threads in each task (each task asks Ray for one CPU).

    Returns:
        ``vectro merge``'s summary plus ``shards`` (each shard's compress summary, with
        ``already_complete``) and ``parts_dir`` (where the shards are, if kept).
    """
    out = os.fspath(out)
    spec = (codec or "int8").split(":", 1)[0]
    if spec == "auto":
        raise ValueError("codec='auto' samples the whole input; choose a codec")
    if spec in _TRAINED and codebook is None:
        raise ValueError(
            f"codec {codec!r} trains on the whole input: train once with vectro.train(...) "
            "on a sample and pass codebook=, so that every shard encodes with one codebook"
        )
    if os.path.exists(out) and not force:
        raise vectro.UsageError(f"{out} exists; pass force=True to overwrite it")
    refs = ds.to_arrow_refs()
    if column is None:
        names = ds.columns() or []
        if len(names) == 1:
            column = names[0]
        else:
            column = next((c for c in ("embedding", "data") if c in names), None)
            if column is None:
                raise ValueError(f"the dataset has columns {names}: say which holds the vectors with column=")
    described = _get([_describe.remote(r, column) for r in refs])
    blocks = [(r, d[0]) for r, d in zip(refs, described) if d[0] > 0]
    kinds = {(d[1], d[2]) for d in described if d[0] > 0}
    if not blocks:
        raise vectro.BadInputError(f"{name}: the dataset has no rows; there is nothing to compress")
    if len(kinds) != 1:
        raise vectro.BadInputError(
            f"{name}: column {column!r} holds rows of different dims or dtypes {sorted(kinds)}"
        )
    dims, dtype = kinds.pop()
    if np.dtype(dtype).kind != "f":
        raise vectro.BadInputError(f"{name}: column {column!r} is {np.dtype(dtype)}, not floats")
    total = sum(b[1] for b in blocks)
    chunk_rows = int(chunk_rows or default_chunk_rows(dims))
    chunks = -(-total // chunk_rows)
    n = max(1, min(shards or len(blocks), chunks))
    plan = shard_plan(total, chunk_rows, n)

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    own_parts = parts_dir is None
    parts = (
        tempfile.mkdtemp(prefix=".vectro-ray-", dir=os.path.dirname(os.path.abspath(out)))
        if own_parts
        else os.fspath(parts_dir)
    )
    os.makedirs(parts, exist_ok=True)
    try:
        options: Dict[str, Any] = {
            "codec": codec,
            "chunk_rows": chunk_rows,
            "codebook": None if codebook is None else os.path.abspath(os.fspath(codebook)),
            "zstd": zstd,
            "name": name,
            "fsync": fsync,
            "threads": threads_per_shard,
        }
        if id_column is not None:
            ids: List[Any] = []
            for chunk in _get([_ids.remote(r, id_column) for r, _ in blocks]):
                ids.extend(chunk)
            ids_path = os.path.join(parts, "ids.npy")
            arr = np.asarray(ids)
            if arr.dtype.kind not in "uiU":
                raise vectro.BadInputError(
                    f"id column {id_column!r} holds {arr.dtype} values; ids are non-negative integers or str"
                )
            np.save(ids_path, arr)
            options["ids"] = ids_path
        # The pieces of each shard: (block, first, end) within the blocks, in order.
        starts = np.cumsum([0] + [b[1] for b in blocks])
        tasks = []
        for k, (a, b) in enumerate(plan):
            pieces = []
            for i, (ref, rows) in enumerate(blocks):
                lo, hi = max(a, starts[i]), min(b, starts[i] + rows)
                if lo < hi:
                    pieces.append((ref, int(lo - starts[i]), int(hi - starts[i])))
            target = os.path.join(parts, "part-{shard}.vectro")
            tasks.append(
                _compress_shard.options(num_cpus=1).remote(
                    k, n, pieces, total, dims, dtype, (a, b), column, target, options
                )
            )
        summaries = _get(tasks)
        merged = vectro.merge([s["output"] for s in summaries], out, force=force, fsync=fsync)
        merged["shards"] = summaries
        merged["parts_dir"] = parts if keep_parts or not own_parts else None
        return merged
    finally:
        if own_parts and not keep_parts:
            shutil.rmtree(parts, ignore_errors=True)
