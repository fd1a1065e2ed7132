"""What the loaders share: the container's rows by window, ids, payload, checkpoint, progress."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

from .. import BadInputError, Container, UsageError

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, Callable[[int, int], Any], None]

METRICS = ("cos", "ip", "l2")


def require(module: str, extra: str, engine: str) -> Any:
    """Import an engine's client, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        hint = ""
        if getattr(e, "name", None) == "pkg_resources":
            hint = " (pymilvus 2.3 imports pkg_resources: setuptools<81 provides it)"
        raise ImportError(
            f"vectro.integrations.{extra} needs {engine}'s Python package ({module} cannot "
            f"be imported: {e}){hint}; install it with: pip install vectro[{extra}]"
        ) from e


def open_container(container: Union[Container, PathLike]) -> Tuple[Container, bool]:
    """The container, and whether we opened it (then we close it)."""
    if isinstance(container, Container):
        return container, False
    return Container(os.fspath(container)), True


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise UsageError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric


def check_batch_rows(batch_rows: Optional[int]) -> Optional[int]:
    if batch_rows is not None and int(batch_rows) < 1:
        raise UsageError(f"batch_rows must be at least 1, got {batch_rows}")
    return None if batch_rows is None else int(batch_rows)


def windows(total: int, start: int, step: int) -> Iterator[Tuple[int, int]]:
    a = start
    while a < total:
        b = min(a + step, total)
        yield a, b
        a = b


def ids_of(c: Container, a: int, b: int) -> Union[List[str], Any]:
    """Ids of rows ``a..b``: a list of str, or a uint64 array (the rows' numbers when the
    container stores no ids)."""
    return c.ids(a, b)


def id_kind(c: Container) -> str:
    """``"string"`` or ``"u64"`` (stored integer ids, or row numbers)."""
    return "string" if c.id_kind == "string" else "u64"


# --- payload ------------------------------------------------------------------------------


class PayloadSource:
    """Payload columns aligned row by row with a container, read by row range.

    ``payload`` is a ``pyarrow.Table``, a pandas DataFrame, a dict of columns (lists or
    arrays), or the path of a Parquet file (read by row group: memory stays bounded);
    ``columns`` picks some of its columns. Without ``payload``, the container's own payload
    columns (``Container.payload``) when it has any.

    A column named ``id_name`` (the loader's id field) is taken for a copy of the ids, as
    in a Parquet file the container was compressed from with ``--id-column``: each window
    checks that it equals the container's ids and leaves it out of the payload. Other
    columns named like the loader's fields (``reserved``) are refused.
    """

    def __init__(
        self,
        payload: Any,
        columns: Optional[Sequence[str]],
        c: Container,
        reserved: Sequence[str] = (),
        id_name: Optional[str] = None,
    ) -> None:
        self.rows = len(c)
        self.id_column: Optional[str] = None
        self._table = None
        self._pq = None
        self._container = None
        self._cache: Optional[Tuple[int, int, Any]] = None
        self.schema = None
        if payload is None:
            self._from_container(c)
            if columns is not None and self.schema is None:
                raise UsageError(
                    "payload_columns given, but no payload= and the container has no payload columns"
                )
            if self.schema is not None:
                self._name = f"{c.path}'s payload"
                n = self.rows
        else:
            pa = require("pyarrow", "payload", "pyarrow")
            if isinstance(payload, (str, os.PathLike)):
                pq = require("pyarrow.parquet", "payload", "pyarrow")
                path = os.fspath(payload)
                try:
                    f = pq.ParquetFile(path)
                except (OSError, pa.ArrowException) as e:
                    raise BadInputError(f"{path}: cannot read the payload as Parquet: {e}") from e
                n = f.metadata.num_rows
                self._name = path
                self.schema = f.schema_arrow
                self._pq = f
                starts = [0]
                for i in range(f.num_row_groups):
                    starts.append(starts[-1] + f.metadata.row_group(i).num_rows)
                self._starts = starts
            else:
                if isinstance(payload, dict):
                    table = pa.table(payload)
                elif isinstance(payload, pa.Table):
                    table = payload
                elif type(payload).__name__ == "DataFrame" and hasattr(payload, "to_arrow"):
                    table = payload.to_arrow()  # polars
                elif type(payload).__name__ == "DataFrame":
                    table = pa.Table.from_pandas(payload, preserve_index=False)
                else:
                    raise TypeError(
                        "payload must be a pyarrow.Table, a pandas DataFrame, a dict of "
                        f"columns or the path of a Parquet file, not {type(payload).__name__}"
                    )
                self._name = "the payload table"
                n = table.num_rows
                self.schema = table.schema
                self._table = table
        if self.schema is not None:
            pa = require("pyarrow", "payload", "pyarrow")
            if n != self.rows:
                raise BadInputError(
                    f"{self._name} has {n} rows but the container has {self.rows}: the "
                    "payload must hold one row per container row, in the container's order"
                )
            if columns is not None:
                missing = [x for x in columns if x not in self.schema.names]
                if missing:
                    raise BadInputError(
                        f"{self._name} has no column {missing[0]!r} (it has "
                        f"{', '.join(self.schema.names)})"
                    )
                self.schema = pa.schema([self.schema.field(x) for x in columns])
                if self._table is not None:
                    self._table = self._table.select(list(columns))
            if id_name is not None and id_name in self.schema.names:
                self.id_column = id_name
            clash = [x for x in self.columns if x in reserved]
            if clash:
                raise BadInputError(
                    f"payload column {clash[0]!r} has the name of the loader's own field; "
                    "rename it, or pick other columns with payload_columns="
                )

    def _from_container(self, c: Container) -> None:
        if not hasattr(c, "payload"):
            return
        try:
            t = c.payload(0, 0)
        except Exception:  # noqa: BLE001 - a container without payload columns
            return
        if t is None or getattr(t, "num_columns", 0) == 0:
            return
        self._container = c
        self._name = f"{c.path}'s payload"
        self.schema = t.schema

    @property
    def columns(self) -> List[str]:
        """The payload columns (without a copy of the ids)."""
        if self.schema is None:
            return []
        return [x for x in self.schema.names if x != self.id_column]

    @property
    def fields(self) -> List[Any]:
        """The pyarrow fields of the payload columns."""
        return [self.schema.field(x) for x in self.columns]

    def slice(self, a: int, b: int, ids: Any = None) -> Any:
        """Rows ``a..b`` of the payload columns as a pyarrow Table, or None without payload;
        a copy of the ids is checked against ``ids`` and left out."""
        if not self.columns:
            if self.id_column is not None:
                self._check_ids(self._rows(a, b), a, ids)
            return None
        t = self._rows(a, b)
        if self.id_column is not None:
            self._check_ids(t, a, ids)
            t = t.select(self.columns)
        return t

    def _rows(self, a: int, b: int) -> Any:
        if self._table is not None:
            return self._table.slice(a, b - a)
        if self._container is not None:
            return self._container.payload(a, b).select(self.schema.names)
        return self._parquet_slice(a, b)

    def _check_ids(self, t: Any, a: int, ids: Any) -> None:
        got = t.column(self.id_column).to_pylist()
        want = ids if isinstance(ids, list) else [int(i) for i in ids]
        if got != want:
            i = next(i for i, (x, y) in enumerate(zip(got, want)) if x != y)
            raise BadInputError(
                f"{self._name}: column {self.id_column!r} is taken for the ids, but at row "
                f"{a + i} it holds {got[i]!r} where the container's id is {want[i]!r}; rename "
                "the column, or leave it out with payload_columns="
            )

    def _parquet_slice(self, a: int, b: int) -> Any:
        import bisect

        import pyarrow as pa

        pieces = []
        row = a
        while row < b:
            g = bisect.bisect_right(self._starts, row) - 1
            if self._cache is None or self._cache[0] != g:
                t = self._pq.read_row_group(g, columns=self.schema.names)
                self._cache = (g, self._starts[g], t)
            _, g0, t = self._cache
            end = min(b, g0 + t.num_rows)
            pieces.append(t.slice(row - g0, end - row))
            row = end
        if not pieces:
            return self.schema.empty_table()
        return pa.concat_tables(pieces).combine_chunks()


# --- checkpoint ---------------------------------------------------------------------------


def fingerprint(c: Container) -> dict:
    n = len(c)
    first = last = None
    if n:
        f, l_ = c.ids(0, 1), c.ids(n - 1, n)
        first, last = (str(f[0]), str(l_[0]))
    return {
        "rows": n,
        "dims": c.dims,
        "codec": c.codec,
        "nbytes": c.nbytes,
        "id_kind": c.id_kind,
        "first_id": first,
        "last_id": last,
    }


class Checkpoint:
    """The rows of a load already in the engine: a small JSON file, rewritten (temp file,
    fsync, rename) after each window the engine acknowledged."""

    def __init__(self, path: Optional[PathLike], c: Container, target: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.target = target
        self.fp = fingerprint(c) if self.path is not None else None

    def done_rows(self) -> int:
        if self.path is None or not os.path.exists(self.path):
            return 0
        try:
            with open(self.path, encoding="utf-8") as f:
                state = json.load(f)
            rows = int(state["done_rows"])
            same = state["container"] == self.fp and state["target"] == self.target
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BadInputError(
                f"{self.path}: not a load checkpoint ({e}); delete it to load from the start"
            ) from e
        if not same:
            raise UsageError(
                f"{self.path} is the checkpoint of another load (target {state.get('target')!r}, "
                f"container {state.get('container')}); give another checkpoint= path, or "
                "delete it to load from the start"
            )
        return min(rows, self.fp["rows"])

    def save(self, rows: int) -> None:
        if self.path is None:
            return
        tmp = self.path + ".tmp"
        state = {"target": self.target, "container": self.fp, "done_rows": rows}
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


# --- progress -----------------------------------------------------------------------------


class Reporter:
    """``progress=True``: one line on stderr redrawn at most every 50 ms; a callable:
    ``f(done_rows, total_rows)`` after each window (done counts rows a resumed load
    skipped)."""

    def __init__(self, progress: Progress, total: int, label: str) -> None:
        if progress not in (None, False, True) and not callable(progress):
            raise TypeError("progress must be a bool or a callable f(done_rows, total_rows)")
        self.progress = progress
        self.total = total
        self.label = label
        self.last = 0.0

    def update(self, done: int) -> None:
        if callable(self.progress):
            self.progress(done, self.total)
        elif self.progress:
            now = time.monotonic()
            if now - self.last >= 0.05 or done == self.total:
                self.last = now
                pct = 100.0 * done / self.total if self.total else 100.0
                sys.stderr.write(f"\r{self.label}: {done}/{self.total} rows ({pct:5.1f}%)")
                sys.stderr.flush()

    def close(self) -> None:
        if self.progress is True:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run_windows(
    c: Container,
    payload: PayloadSource,
    *,
    start: int,
    batch_rows: Optional[int],
    write: Callable[[int, int, Any, Any, Any], None],
    checkpoint: Checkpoint,
    reporter: Reporter,
    codes: bool = False,
) -> int:
    """Hand rows ``start..`` to ``write(a, b, ids, rows, payload_table)`` window by window
    and record each window the engine acknowledged. Returns the rows written.

    A window is one chunk of the container, or ``batch_rows`` of it: the chunks are decoded
    one at a time (``Container.iter_chunks``, which releases each chunk's pages after it), so
    memory holds one chunk whatever the container's size. A resumed load decodes and drops
    the chunks before ``start`` (decoding is far faster than any engine's insert). With
    ``codes``, the rows are the raw codes of ``Container.codes`` instead, by windows of
    ``batch_rows`` (default 4096)."""
    written = 0
    reporter.update(start)

    def send(a: int, b: int, rows: Any) -> None:
        nonlocal written
        ids = ids_of(c, a, b)
        write(a, b, ids, rows, payload.slice(a, b, ids))
        written += b - a
        checkpoint.save(b)
        reporter.update(b)

    if codes:
        for a, b in windows(len(c), start, batch_rows or 4096):
            send(a, b, c.codes(a, b)[0])
        return written
    for first, rows in c.iter_chunks():
        end = first + rows.shape[0]
        if end <= start:
            continue
        step = batch_rows or rows.shape[0]
        for a, b in windows(end, max(start, first), step):
            send(a, b, rows[a - first : b - first])
        del rows
    return written
