"""Vectro: compress embedding vectors, from numpy to a checksummed container and back.

The work is done by the Rust library (the same engine as the ``vectro`` command line tool);
this package only hands it numpy arrays and paths, without copying the rows.

>>> import numpy as np, vectro
>>> x = np.random.default_rng(0).standard_normal((10_000, 384), dtype=np.float32)
>>> summary = vectro.compress(x, "emb.vectro", codec="int8")      # doctest: +SKIP
>>> with vectro.open("emb.vectro") as c:                            # doctest: +SKIP
...     rows = c[[3, 1, 4]]                                          # float32, (3, 384)

Long calls (compress, decompress, eval, train, verify) release the GIL; Ctrl-C stops them
at a chunk boundary (a compress keeps its resumable partial output: call again with
``resume=True``). Importing the package does not import numpy or start any thread.
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from . import _vectro
from ._vectro import (
    BadInputError,
    CancelledError,
    Container,
    CorruptError,
    InternalError,
    QualityGateError,
    UsageError,
    VectroError,
    VectroIOError,
    __version__,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "BadInputError",
    "CancelledError",
    "Container",
    "CorruptError",
    "InternalError",
    "QualityGateError",
    "UsageError",
    "VectroError",
    "VectroIOError",
    "__version__",
    "compress",
    "decompress",
    "eval",
    "import_npz",
    "load_npz",
    "merge",
    "open",
    "quantize_embeddings",
    "reconstruct_embeddings",
    "report",
    "save_npz",
    "train",
    "verify",
]

PathLike = Union[str, "_os.PathLike[str]"]
Progress = Union[bool, Callable[[int, int], Any], None]


def compress(
    data: Union["np.ndarray", PathLike],
    out: PathLike,
    codec: Optional[str] = None,
    *,
    zstd: Optional[int] = None,
    threads: int = 0,
    chunk_rows: Optional[int] = None,
    codebook: Optional[PathLike] = None,
    train_rows: Optional[int] = None,
    shard: Optional[str] = None,
    resume: bool = False,
    force: bool = False,
    min_cosine: Optional[float] = None,
    min_recall: Optional[float] = None,
    sample: int = 2000,
    fsync: bool = True,
    keep_partial: bool = True,
    name: Optional[str] = None,
    progress: Progress = False,
    ids: Union[None, PathLike, Sequence[Any], "np.ndarray"] = None,
    column: Optional[str] = None,
    id_column: Optional[str] = None,
    payload_columns: Optional[Sequence[str]] = None,
    rescore: Optional[str] = None,
) -> dict:
    """Compress rows into a new container at ``out``; return the summary ``vectro compress --json`` prints.

    Args:
        data: a 2-D numpy array of float32, float16 or float64 (C-contiguous: it is read in
            place, never copied; a strided view raises BadInputError, pass
            ``np.ascontiguousarray(x)``), or the path of an input in any format the CLI
            reads (``.npy``, Parquet, Arrow/Feather, ``.fvecs``, ``.fbin``,
            ``model.safetensors:tensor``, ``x.npz:member``; see docs/inputs.md), a directory
            of them, or a glob pattern (read as one matrix).
        out: the container to write. It appears only when complete; with ``shard``, a
            ``{shard}`` in the name is replaced by the shard's number.
        codec: ``int8`` (default), ``int4``, ``binary``, ``f16``, ``bf16``, ``pq``, ``opq``,
            ``binary-itq``, ``auto`` (with ``min_cosine``/``min_recall``), with parameters as
            the CLI takes them, e.g. ``"int4:rotate=1"`` or ``"pq:m=48,nbits=8"``.
        zstd: also compress each chunk with zstd at this level.
        threads: worker threads; 0 means all cores.
        chunk_rows: rows per chunk (default: about 4 MiB of input per chunk).
        codebook: a ``.vcb`` from :func:`train` to encode with, instead of training.
        train_rows: rows sampled to train pq/opq/binary-itq.
        shard: ``"K/N"`` (or ``"auto"``, from the Slurm/Kubernetes environment): compress
            only this shard of the chunks; merge the shards with ``vectro merge``.
        resume: continue the partial output an interrupted run left (Ctrl-C, a crash).
        force: overwrite an existing output.
        min_cosine, min_recall: the quality target of ``codec="auto"``.
        sample: rows ``codec="auto"`` measures.
        fsync: sync the output before it is renamed into place.
        keep_partial: keep the partial output on an interruption or I/O error, for ``resume``.
        name: how an array input is named in errors and in the metadata (default ``<array>``).
        progress: ``True`` for a bar on stderr, or a callable ``f(done_rows, total_rows)``
            called from this thread about every 50 ms.
        ids: one id per input row, stored with it: a 1-D array or sequence of
            non-negative integers or of str, or the path of a ``.npy`` of them or of a
            text file with one id a line. ``Container.ids()`` returns them.
        column: the Parquet or Arrow column of vectors (default: the one column of float
            vectors).
        id_column: the Parquet or Arrow column of ids (integers or str), stored as
            ``ids`` are.
        payload_columns: other columns of a Parquet or Arrow input (integers, floats,
            bool, str, or lists of those) stored with the rows: ``Container.payload()``,
            ``vectro get`` and ``vectro export`` return them (docs/inputs.md).
        rescore: a finer codec of the same rows stored beside ``codec`` in every chunk
            (a rescoring tier, e.g. ``codec="binary:rotate=1", rescore="int8"``):
            ``Container.search`` scans ``codec`` and re-ranks with it, and rows decode from
            it (docs/search.md).

    Raises:
        BadInputError: NaN/Inf or out-of-range values (naming row and column), a bad shape
            or dtype. UsageError: a bad option, or ``out`` exists without ``force``.
        VectroIOError: the file system failed. KeyboardInterrupt: Ctrl-C; the complete chunks
            are kept for ``resume=True``.
    """
    data = _array_or_path(data)
    if ids is None or isinstance(ids, (str, _os.PathLike)):
        return _compress(data, out, codec, locals(), None if ids is None else _os.fspath(ids))
    import tempfile

    import numpy as np

    arr = np.asarray(ids)
    if arr.dtype.kind not in "uiU":
        raise BadInputError(
            f"ids: dtype {arr.dtype} cannot hold ids; give non-negative integers or str"
        )
    with tempfile.TemporaryDirectory(prefix="vectro-ids-") as tmp:
        path = _os.path.join(tmp, "ids.npy")
        np.save(path, np.ascontiguousarray(arr))
        return _compress(data, out, codec, locals(), path)


def _compress(data: Any, out: PathLike, codec: Optional[str], a: dict, ids: Optional[str]) -> dict:
    return _vectro.compress(
        data,
        _os.fspath(out),
        codec,
        zstd=a["zstd"],
        threads=a["threads"],
        chunk_rows=a["chunk_rows"],
        codebook=None if a["codebook"] is None else _os.fspath(a["codebook"]),
        train_rows=a["train_rows"],
        shard=a["shard"],
        resume=a["resume"],
        force=a["force"],
        min_cosine=a["min_cosine"],
        min_recall=a["min_recall"],
        sample=a["sample"],
        fsync=a["fsync"],
        keep_partial=a["keep_partial"],
        name=a["name"],
        progress=a["progress"],
        ids=ids,
        column=a["column"],
        id_column=a["id_column"],
        payload_columns=None if a["payload_columns"] is None else list(a["payload_columns"]),
        rescore=a["rescore"],
    )


def open(path: PathLike) -> Container:  # noqa: A001 - as gzip.open, h5py.File
    """Open a container for reading: cheap (checks the header, trailer and index only).

    The returned :class:`Container` supports ``len(c)``, ``c.shape``, ``c.dims``,
    ``c.codec``, ``c.metadata``, ``c[i]``, ``c[i:j]``, ``c[[ids]]``/``c[np.array]`` (float32
    arrays), ``c.codes()`` (raw codes), ``c.iter_chunks()``, ``c.verify()``, and ``with``.
    One container may be shared by many Python threads; reads release the GIL.
    """
    return Container(_os.fspath(path))


def decompress(
    path: PathLike,
    out: Optional[PathLike] = None,
    *,
    dtype: Optional[str] = None,
    threads: int = 0,
    force: bool = False,
    fsync: bool = True,
    progress: Progress = False,
) -> Union["np.ndarray", dict]:
    """Decode a whole container.

    With ``out=None``, return the rows as a new array of shape ``(rows, dims)`` (chunks
    decoded in parallel, straight into the array). With ``out``, write a ``.npy`` there,
    streaming (memory stays small whatever the size) and return the summary
    ``vectro decompress --json`` prints (its ``dtype`` says what was written).

    ``dtype`` is ``"f32"``, ``"f16"`` or ``"bf16"``; by default the dtype the container's
    input had: float16 for a float16 input, else float32 (a float64 input comes back
    float32: every codec decodes to float32 values). numpy has no bfloat16, so ``"bf16"``
    gives the bit patterns as uint16, in the array and in the ``.npy`` (``<u2``): view
    them with ``ml_dtypes.bfloat16``, or widen with
    ``(a.astype(np.uint32) << 16).view(np.float32)``. A value beyond the range of the
    16-bit type raises BadInputError naming its row and column.
    """
    if out is None:
        rows, name = _vectro.decompress_array(_os.fspath(path), dtype)
        if name == "f16":
            return rows.view("<f2")
        return rows
    return _vectro.decompress_to(
        _os.fspath(path),
        _os.fspath(out),
        dtype=dtype,
        threads=threads,
        force=force,
        fsync=fsync,
        progress=progress,
    )


def eval(  # noqa: A001 - the CLI's name
    orig: Union["np.ndarray", PathLike],
    comp: PathLike,
    *,
    queries: Union["np.ndarray", PathLike, None] = None,
    k: Union[int, Sequence[int]] = (1, 10, 100),
    sample_queries: int = 100,
    seed: int = 42,
    metric: str = "cos",
    rerank: int = 100,
    threads: int = 0,
    exact_float_search: bool = False,
    min_cosine: Optional[float] = None,
    min_recall: Optional[float] = None,
    max_nmse: Optional[float] = None,
    progress: Progress = False,
    column: Optional[str] = None,
) -> dict:
    """Measure what compression cost: the keys of ``vectro eval --json`` (cosine, mse, nmse,
    recall@k and rescored recall, sizes, ...) plus ``gates``.

    ``orig`` is the original input, in any format :func:`compress` reads (``column`` names
    a Parquet or Arrow column), or an array (saved to a temporary ``.npy`` first: one
    copy on disk); ``queries`` a ``.npy`` or array of query rows (default: a
    seeded sample of ``orig``). ``metric`` is ``cos``, ``ip`` or ``l2``.

    Raises:
        QualityGateError: a gate (``min_cosine``, ``min_recall`` for every k, ``max_nmse``)
            failed; its ``report`` attribute holds the full result.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vectro-eval-") as tmp:
        orig_path = _npy_path(orig, tmp, "orig.npy")
        q_path = None if queries is None else _npy_path(queries, tmp, "queries.npy")
        ks = [int(k)] if isinstance(k, int) else [int(x) for x in k]
        return _vectro.eval(
            orig_path,
            _os.fspath(comp),
            queries=q_path,
            k=ks,
            sample_queries=sample_queries,
            seed=seed,
            metric=metric,
            rerank=rerank,
            threads=threads,
            exact_float_search=exact_float_search,
            min_cosine=min_cosine,
            min_recall=min_recall,
            max_nmse=max_nmse,
            progress=progress,
            column=column,
        )


def report(
    orig: Union["np.ndarray", PathLike],
    containers: Union[PathLike, Sequence[PathLike], None] = None,
    out: Optional[PathLike] = None,
    *,
    codecs: Optional[Sequence[str]] = None,
    rows: int = 100_000,
    svg_dir: Optional[PathLike] = None,
    png: bool = False,
    peers: Union[PathLike, Sequence[dict], None] = None,
    k: int = 10,
    sample_queries: int = 100,
    seed: int = 42,
    metric: str = "cos",
    rerank: int = 100,
    pca_sample: int = 500,
    movement_queries: int = 5,
    threads: int = 0,
    force: bool = False,
    progress: Progress = False,
    column: Optional[str] = None,
) -> dict:
    """Write one self-contained HTML page of what compression did, as ``vectro report``
    does, and return its numbers (the keys of ``vectro report --json``, ``html`` the page).

    ``containers`` are compressed from ``orig`` (a path, or an array saved to a temporary
    ``.npy``); or, instead, ``codecs`` are tried on its first ``rows`` rows. ``out``
    defaults to the first container's path with ``.report.html`` for its extension.
    ``svg_dir`` also writes each figure as an SVG file, and ``png=True`` a PNG beside each
    (twice the SVG's size). ``peers`` is a JSON file or a list of
    ``{"name", "bytes_per_vector", "recall", "k"?}`` dicts (docs/report.md).
    """
    import json
    import tempfile

    if containers is None:
        paths = []
    elif isinstance(containers, (str, bytes)) or hasattr(containers, "__fspath__"):
        paths = [_os.fspath(containers)]
    else:
        paths = [_os.fspath(c) for c in containers]
    if peers is None:
        peers_json = None
    elif isinstance(peers, (str, bytes)) or hasattr(peers, "__fspath__"):
        with open(_os.fspath(peers), "rb") as f:
            peers_json = f.read().decode("utf-8")
    else:
        peers_json = json.dumps(list(peers))
    with tempfile.TemporaryDirectory(prefix="vectro-report-") as tmp:
        is_array = _is_array(orig)
        if out is None and not paths and is_array:
            raise UsageError("an array with codecs has no file to put the page beside: pass out=")
        orig_path = _npy_path(orig, tmp, "orig.npy")
        words = ["<array>" if is_array else repr(_os.fspath(orig))] + [repr(p) for p in paths]
        if codecs:
            words.append("codecs={!r}".format(list(codecs)))
        command = "vectro.report({})".format(", ".join(words))
        return _vectro.report(
            orig_path,
            paths,
            None if out is None else _os.fspath(out),
            codecs=list(codecs or []),
            rows=rows,
            svg_dir=None if svg_dir is None else _os.fspath(svg_dir),
            png=png,
            peers_json=peers_json,
            k=k,
            sample_queries=sample_queries,
            seed=seed,
            metric=metric,
            rerank=rerank,
            pca_sample=pca_sample,
            movement_queries=movement_queries,
            threads=threads,
            force=force,
            command=command,
            progress=progress,
            column=column,
        )


def train(
    data: Union["np.ndarray", PathLike],
    out: PathLike,
    codec: str = "pq",
    *,
    train_rows: Optional[int] = None,
    threads: int = 0,
    force: bool = False,
    name: Optional[str] = None,
    progress: Progress = False,
    column: Optional[str] = None,
) -> dict:
    """Train a pq, opq or binary-itq codec on a seeded sample of ``data`` and write it as
    a ``.vcb``.

    ``codec`` is ``"pq:m=48"``, ``"opq:m=48,nbits=4"``, ``"binary-itq"`` and so on. Pass
    the file as ``compress(..., codebook=out)`` to encode other data (tomorrow's rows,
    other shards) with the same codebook, without training again; the container is the one
    training in ``compress`` would write. ``data`` is an array (borrowed, not copied) or
    what :func:`compress` takes as a path. Returns the summary ``vectro train --json``
    prints (binary-itq: ``itq_iterations`` and ``itq_loss`` instead of ``distortion``).
    With a ``progress`` callback, training reports its iterations as ``(done, total)``
    before the rows of a compress are counted.
    """
    data = _array_or_path(data)
    return _vectro.train(
        data,
        _os.fspath(out),
        codec,
        train_rows=train_rows,
        threads=threads,
        force=force,
        name=name,
        progress=progress,
        column=column,
    )


def verify(path: PathLike) -> dict:
    """Check every checksum and the structure of a container; return the report of
    ``vectro verify --json``. Raises CorruptError (with ``.report``) if anything is wrong."""
    return _vectro.verify(_os.fspath(path))


def merge(
    parts: Union[PathLike, Sequence[PathLike]],
    out: PathLike,
    *,
    force: bool = False,
    fsync: bool = True,
    progress: Progress = False,
) -> dict:
    """Join the shards of one compress (``compress(..., shard="K/N")``) into ``out``, the
    container a single run writes, byte for byte; return ``vectro merge --json``'s summary.

    ``parts`` are shard files, directories of them or glob patterns, in any order. Chunks
    are copied, not re-encoded, after their checksums and the shards' agreement (codec,
    dims, chunking, source, every shard once) are checked (docs/scale-out.md).
    """
    if isinstance(parts, (str, _os.PathLike)):
        parts = [parts]
    return _vectro.merge(
        [_os.fspath(p) for p in parts], _os.fspath(out), force=force, fsync=fsync, progress=progress
    )


def import_npz(
    npz: PathLike, out: PathLike, *, chunk_rows: Optional[int] = None, force: bool = False
) -> dict:
    """Convert the prototype's ``.npz`` (``q``, ``scales``, ``dims``) into an int8 container,
    moving the codes as they are (no value is quantized again)."""
    return _vectro.import_npz(
        _os.fspath(npz), _os.fspath(out), chunk_rows=chunk_rows, force=force
    )


# --- the prototype's API ---------------------------------------------------------------


def quantize_embeddings(x: Any) -> tuple:
    """Per-vector int8 of the original prototype, bit for bit: returns ``(q, scales)``.

    ``scales[i] = max|x[i]| / 127`` (float32; 1.0 for an all-zero row) and
    ``q[i, j] = rint(x[i, j] / scales[i])`` as int8 (round half to even), ``q`` of shape
    ``(rows, dims)``. ``x`` is converted as the prototype did (``np.asarray(x,
    dtype=np.float32)``: a float32 C-contiguous array is not copied). NaN/Inf raise
    BadInputError naming the row and column.
    """
    import numpy as np

    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2:
        raise BadInputError(f"expected a 2-D array, got shape {x.shape}")
    return _vectro.quantize_embeddings(x)


def reconstruct_embeddings(q: Any, scales: Any, dims: Optional[int] = None) -> "np.ndarray":
    """The prototype's reconstruction, bit for bit: ``float32(q) * scales[:, None]``.

    ``q`` is int8, either ``(rows, dims)`` or flat as the ``.npz`` stores it (then give
    ``dims``); returns float32 of shape ``(rows, dims)``.
    """
    import numpy as np

    q = np.asarray(q)
    if q.dtype != np.int8:
        raise BadInputError(f"q has dtype {q.dtype}, expected int8")
    if dims is not None:
        q = q.reshape(-1, int(dims))
    if q.ndim != 2:
        raise BadInputError(f"q has shape {q.shape}: give dims to reshape a flat q")
    scales = np.asarray(scales, dtype=np.float32).reshape(-1)
    return _vectro.reconstruct_embeddings(np.ascontiguousarray(q), np.ascontiguousarray(scales))


def save_npz(path: PathLike, q: Any, scales: Any, dims: Optional[int] = None) -> None:
    """Write ``(q, scales)`` in the prototype's ``.npz`` layout: ``q`` flat int8, ``scales``
    float32, ``dims`` an int64 scalar (``np.savez``, as the prototype wrote it)."""
    import numpy as np

    q = np.asarray(q)
    if dims is None:
        if q.ndim != 2:
            raise BadInputError("q is flat: give dims")
        dims = q.shape[1]
    np.savez(
        path,
        q=q.astype(np.int8, copy=False).reshape(-1),
        scales=np.asarray(scales, dtype=np.float32).reshape(-1),
        dims=np.int64(dims),
    )


def load_npz(path: PathLike) -> tuple:
    """Read the prototype's ``.npz``: returns ``(q, scales, dims)``, ``q`` shaped ``(rows, dims)``."""
    import numpy as np

    with np.load(path) as z:
        for member in ("q", "scales", "dims"):
            if member not in z.files:
                raise BadInputError(f"{_os.fspath(path)}: member {member} is missing")
        dims = int(z["dims"])
        q = z["q"]
        if q.dtype != np.int8 or dims <= 0 or q.size % dims:
            raise BadInputError(
                f"{_os.fspath(path)}: member q ({q.dtype}, {q.size} values) is not int8 rows of {dims} dims"
            )
        return q.reshape(-1, dims), z["scales"], dims


# --- helpers -----------------------------------------------------------------------------


def _is_array(x: Any) -> bool:
    # Without importing numpy: an ndarray is whatever exposes the array interface.
    return hasattr(x, "__array_interface__") and not isinstance(x, (str, bytes))


def _array_or_path(x: Any) -> Any:
    if _is_array(x):
        return x
    try:
        return _os.fspath(x)
    except TypeError:
        raise TypeError(
            f"data must be a numpy array or a path (str or os.PathLike), not {type(x).__name__}; "
            "for a list of vectors, pass np.asarray(rows, dtype=np.float32)"
        ) from None


def _npy_path(x: Any, tmp: str, name: str) -> str:
    if _is_array(x):
        import numpy as np

        p = _os.path.join(tmp, name)
        np.save(p, np.asarray(x))
        return p
    return _os.fspath(x)
