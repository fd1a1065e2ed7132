"""The on-disk engine behind the LangChain and LlamaIndex vector stores.

A store is a directory of write-once segments and one manifest::

    store/
      MANIFEST.json                 the committed state: segments, tombstones, settings
      seg-000001-1a2b3c4d.vectro    the vectors of one add(), in the store's codec
      seg-000001-1a2b3c4d.fine.vectro   (optional) the same rows in a finer codec, to rescore
      seg-000001-1a2b3c4d.jsonl     one JSON object a row: {"id", "text", "metadata"}

Each ``add`` writes a new segment (containers are write-once) and then commits a new
manifest by temp + fsync + rename; a delete only records tombstones (row numbers of a
segment) in the manifest. A crash at any point leaves the last committed manifest and the
files it names intact: at worst a segment written but never committed stays on disk,
unreferenced, until :meth:`Store.compact` removes it. Adding an id that is already there
replaces it (the older row is tombstoned in the same commit).

Nothing here imports a framework; ``vectro.langchain`` and ``vectro.llama_index`` adapt it.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

MANIFEST = "MANIFEST.json"
FORMAT = "vectro-store"
VERSION = 1
METRICS = ("cos", "ip", "l2")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one."""
    d, base = os.path.split(path)
    tmp = os.path.join(d, f".{base}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(d or ".")


def _threads(rows: int) -> int:
    """Worker threads for a segment of ``rows``: one for a small one (a pool costs more
    than it saves), every core for a large one."""
    return 1 if rows < 65536 else 0


def _stamp(st: os.stat_result) -> Tuple[int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class _Writing:
    """The store's write lock: its thread lock and, on the outermost entry, an exclusive
    ``flock`` of ``.lock`` in the directory (against writers in other processes), then a
    reload if another process committed since this one last read the manifest."""

    def __init__(self, store: "Store"):
        self.store = store

    def __enter__(self) -> None:
        st = self.store
        st._lock.acquire()
        st._depth += 1
        if st._depth == 1:
            try:
                import fcntl

                st._lockfile = open(os.path.join(st.root, ".lock"), "a+b")
                fcntl.flock(st._lockfile.fileno(), fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - no flock (Windows): threads only
                st._lockfile = None
            except BaseException:
                self.__exit__()
                raise
            st._refresh()

    def __exit__(self, *exc: Any) -> None:
        st = self.store
        st._depth -= 1
        if st._depth == 0 and st._lockfile is not None:
            st._lockfile.close()  # releases the flock
            st._lockfile = None
        st._lock.release()


class Segment:
    """One committed segment: its containers (opened lazily) and its records."""

    def __init__(self, root: str, entry: Dict[str, Any]):
        self.root = root
        self.name: str = entry["name"]
        self.rows: int = int(entry["rows"])
        self.fine: bool = bool(entry.get("fine", False))
        self.deleted: set = set(entry.get("deleted", ()))
        self._records: Optional[List[Dict[str, Any]]] = None
        self._coarse: Any = None
        self._fine: Any = None

    def path(self, suffix: str) -> str:
        return os.path.join(self.root, self.name + suffix)

    def entry(self) -> Dict[str, Any]:
        e: Dict[str, Any] = {"name": self.name, "rows": self.rows, "deleted": sorted(self.deleted)}
        if self.fine:
            e["fine"] = True
        return e

    @property
    def records(self) -> List[Dict[str, Any]]:
        if self._records is None:
            with open(self.path(".jsonl"), encoding="utf-8") as f:
                recs = [json.loads(line) for line in f if line.strip()]
            if len(recs) != self.rows:
                from . import CorruptError

                raise CorruptError(
                    f"{self.path('.jsonl')}: {len(recs)} records, the manifest says {self.rows} rows"
                )
            self._records = recs
        return self._records

    def container(self, fine: bool = False) -> Any:
        from . import Container

        if fine:
            if self._fine is None:
                self._fine = Container(self.path(".fine.vectro"))
            return self._fine
        if self._coarse is None:
            self._coarse = Container(self.path(".vectro"))
        return self._coarse

    def live_rows(self) -> List[int]:
        return [i for i in range(self.rows) if i not in self.deleted]

    def close(self) -> None:
        for c in (self._coarse, self._fine):
            if c is not None:
                c.close()
        self._coarse = self._fine = None


class Store:
    """A directory of compressed segments with texts and metadata; see the module doc.

    Args:
        path: the store's directory (created if missing).
        codec: the codec of the searched tier (any ``vectro.compress`` codec; default
            ``int8``). Trained codecs (pq, opq, binary-itq) train on each segment alone.
        rescore_codec: a finer codec (e.g. ``int8`` beside ``binary:rotate=1``) written
            beside each segment; searches then re-rank ``rescore`` candidates by it.
        rescore: candidates re-ranked per query when ``rescore_codec`` is set.
        metric: ``cos`` (default), ``ip`` or ``l2`` (squared distance, smallest first).

    An existing store keeps the settings it was created with; passing different ones
    raises ``ValueError``.
    """

    def __init__(
        self,
        path: "str | os.PathLike[str]",
        *,
        codec: Optional[str] = None,
        rescore_codec: Optional[str] = None,
        rescore: int = 100,
        metric: Optional[str] = None,
        fsync: bool = True,
    ):
        self.root = os.fspath(path)
        self.fsync = fsync
        self._lock = threading.RLock()
        os.makedirs(self.root, exist_ok=True)
        self._depth = 0
        self._lockfile: Any = None
        self._stamp: Any = None
        mpath = os.path.join(self.root, MANIFEST)
        if os.path.exists(mpath):
            with open(mpath, encoding="utf-8") as f:
                self._stamp = _stamp(os.fstat(f.fileno()))
                m = json.load(f)
            if m.get("format") != FORMAT or int(m.get("version", 0)) > VERSION:
                from . import CorruptError

                raise CorruptError(
                    f"{mpath}: not a vectro store manifest of version <= {VERSION}"
                )
            for key, given in (("codec", codec), ("rescore_codec", rescore_codec), ("metric", metric)):
                if given is not None and given != m.get(key):
                    raise ValueError(
                        f"{self.root}: the store was created with {key}={m.get(key)!r}, not {given!r}"
                    )
            self.codec = m["codec"]
            self.rescore_codec = m.get("rescore_codec")
            self.metric = m["metric"]
            self.dims = m.get("dims")
            self.rescore = int(m.get("rescore", rescore))
            self._seq = int(m.get("next_segment", 1))
            self.segments = [Segment(self.root, e) for e in m["segments"]]
        else:
            metric = metric or "cos"
            if metric not in METRICS:
                raise ValueError(f"metric={metric!r}: use one of {', '.join(METRICS)}")
            self.codec = codec or "int8"
            self.rescore_codec = rescore_codec
            self.metric = metric
            self.dims = None
            self.rescore = int(rescore)
            self._seq = 1
            self.segments = []
        self._index: Optional[Dict[str, Tuple[int, int]]] = None

    # --- state -----------------------------------------------------------------------

    def _manifest(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "codec": self.codec,
            "rescore_codec": self.rescore_codec,
            "rescore": self.rescore,
            "metric": self.metric,
            "dims": self.dims,
            "next_segment": self._seq,
            "segments": [s.entry() for s in self.segments],
        }

    def _commit(self) -> None:
        data = json.dumps(self._manifest(), indent=1).encode()
        path = os.path.join(self.root, MANIFEST)
        _write_atomic(path, data)
        self._stamp = _stamp(os.stat(path))

    def _refresh(self) -> None:
        """Reload if the manifest on disk is not the one this object last read or wrote
        (another process committed)."""
        try:
            now: Any = _stamp(os.stat(os.path.join(self.root, MANIFEST)))
        except FileNotFoundError:
            now = None
        if now != self._stamp:
            self._reload()

    def _ids(self) -> Dict[str, Tuple[int, int]]:
        """id -> (segment number, row) of every live row."""
        if self._index is None:
            idx: Dict[str, Tuple[int, int]] = {}
            for si, s in enumerate(self.segments):
                for r, rec in enumerate(s.records):
                    if r not in s.deleted:
                        idx[rec["id"]] = (si, r)
            self._index = idx
        return self._index

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._ids())

    def __contains__(self, id: str) -> bool:
        with self._lock:
            self._refresh()
            return id in self._ids()

    # --- writes ----------------------------------------------------------------------

    def add(self, vectors: Any, records: Sequence[Dict[str, Any]]) -> List[str]:
        """Add rows: ``vectors`` (n, dims) and one record ``{"id", "text", "metadata"}``
        each. A record without an id gets a new uuid4; an id already in the store replaces
        the row that had it. Returns the ids."""
        import numpy as np

        from . import compress

        x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if x.ndim != 2 or x.shape[0] != len(records):
            raise ValueError(
                f"got {x.shape[0] if x.ndim == 2 else x.shape} vectors for {len(records)} records"
            )
        if len(records) == 0:
            return []
        recs = []
        for r in records:
            rid = r.get("id")
            recs.append(
                {
                    "id": str(rid) if rid is not None else str(uuid.uuid4()),
                    "text": r.get("text", ""),
                    "metadata": dict(r.get("metadata") or {}),
                }
            )
        # Within one call the last occurrence of an id wins.
        last = {rec["id"]: i for i, rec in enumerate(recs)}
        keep = sorted(last.values())
        if len(keep) != len(recs):
            x = np.ascontiguousarray(x[keep])
            recs = [recs[i] for i in keep]
        lines = []
        for rec in recs:
            try:
                lines.append(json.dumps(rec, ensure_ascii=False, allow_nan=False))
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"record {rec['id']!r}: its text and metadata must be JSON serializable ({e})"
                ) from None
        with _Writing(self):
            if self.dims is None:
                self.dims = int(x.shape[1])
            elif x.shape[1] != self.dims:
                raise ValueError(f"vectors of {x.shape[1]} dims; this store holds {self.dims} dims")
            name = f"seg-{self._seq:06d}-{uuid.uuid4().hex[:8]}"
            seg = Segment(self.root, {"name": name, "rows": len(recs)})
            # The files first (each appears whole, by rename), the manifest last: until it
            # is committed, the segment is an orphan nobody reads.
            threads = _threads(len(recs))
            compress(x, seg.path(".vectro"), self.codec, fsync=self.fsync, threads=threads, name=name)
            if self.rescore_codec:
                seg.fine = True
                compress(
                    x, seg.path(".fine.vectro"), self.rescore_codec, fsync=self.fsync, threads=threads, name=name
                )
            _write_atomic(seg.path(".jsonl"), ("\n".join(lines) + "\n").encode("utf-8"))
            seg._records = [json.loads(line) for line in lines]
            recs = seg._records
            idx = self._ids()
            for rec in recs:
                old = idx.get(rec["id"])
                if old is not None:
                    self.segments[old[0]].deleted.add(old[1])
            self.segments.append(seg)
            self._seq += 1
            try:
                self._commit()
            except BaseException:
                self._reload()
                raise
            for r, rec in enumerate(recs):
                idx[rec["id"]] = (len(self.segments) - 1, r)
            return [rec["id"] for rec in recs]

    def _reload(self) -> None:
        for s in self.segments:
            s.close()
        fresh = Store(self.root, fsync=self.fsync)
        keep = ("_lock", "_depth", "_lockfile")
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k not in keep})

    def delete(self, ids: Iterable[str]) -> int:
        """Tombstone the rows of ``ids`` (ids not in the store are ignored); returns how
        many rows were deleted."""
        with _Writing(self):
            idx = self._ids()
            hit = [(i, idx[i]) for i in dict.fromkeys(str(i) for i in ids) if i in idx]
            return self._tombstone(hit)

    def delete_where(self, pred: Callable[[Dict[str, Any]], bool]) -> int:
        """Tombstone every live row whose record satisfies ``pred``."""
        with _Writing(self):
            hit = []
            for si, s in enumerate(self.segments):
                for r, rec in enumerate(s.records):
                    if r not in s.deleted and pred(rec):
                        hit.append((rec["id"], (si, r)))
            return self._tombstone(hit)

    def _tombstone(self, hit: List[Tuple[str, Tuple[int, int]]]) -> int:
        if not hit:
            return 0
        for _, (si, r) in hit:
            self.segments[si].deleted.add(r)
        try:
            self._commit()
        except BaseException:
            self._reload()
            raise
        idx = self._ids()
        for rid, _ in hit:
            idx.pop(rid, None)
        return len(hit)

    def clear(self) -> None:
        """Delete every row."""
        with _Writing(self):
            old = self.segments
            self.segments = []
            self._index = None
            self._commit()
            for s in old:
                s.close()
            self._remove_orphans()

    def compact(self) -> Dict[str, int]:
        """Rewrite the live rows into one segment (decoded from the finest tier and
        encoded again) and remove every file the manifest no longer names. Returns
        ``{"rows", "segments_before", "files_removed"}``."""
        import numpy as np

        with _Writing(self):
            before = len(self.segments)
            parts, recs = [], []
            for s in self.segments:
                live = s.live_rows()
                if live:
                    parts.append(s.container(fine=s.fine)[live])
                    recs.extend(s.records[r] for r in live)
            old = self.segments
            self.segments = []
            self._index = None
            if recs:
                self.add(np.concatenate(parts), recs)  # commits the manifest
            else:
                self._commit()
            for s in old:
                s.close()
            removed = self._remove_orphans()
            return {"rows": len(recs), "segments_before": before, "files_removed": removed}

    def _remove_orphans(self) -> int:
        named = {s.name for s in self.segments}
        n = 0
        for f in os.listdir(self.root):
            if f.startswith("seg-") and f.split(".", 1)[0] not in named:
                os.unlink(os.path.join(self.root, f))
                n += 1
            elif f.startswith(".") and f.endswith(".tmp"):
                os.unlink(os.path.join(self.root, f))
                n += 1
        return n

    # --- reads -----------------------------------------------------------------------

    def get(self, ids: Iterable[str]) -> List[Dict[str, Any]]:
        """The records of ``ids`` that are in the store, in the order given."""
        with self._lock:
            self._refresh()
            idx = self._ids()
            out = []
            for i in ids:
                at = idx.get(str(i))
                if at is not None:
                    out.append(self.segments[at[0]].records[at[1]])
            return out

    def get_vectors(self, ids: Sequence[str]) -> Any:
        """The decoded vectors (finest tier) of ``ids``, all of which must be present."""
        import numpy as np

        with self._lock:
            self._refresh()
            idx = self._ids()
            rows = []
            for i in ids:
                si, r = idx[str(i)]
                s = self.segments[si]
                rows.append(s.container(fine=s.fine)[r])
            return np.stack(rows) if rows else np.zeros((0, self.dims or 0), np.float32)

    def records(self) -> List[Dict[str, Any]]:
        """Every live record, in insertion order."""
        with self._lock:
            self._refresh()
            return [
                rec
                for s in self.segments
                for r, rec in enumerate(s.records)
                if r not in s.deleted
            ]

    def search(
        self,
        query: Any,
        k: int = 4,
        *,
        where: Optional[Callable[[Dict[str, Any]], bool]] = None,
    ) -> List[Tuple[Dict[str, Any], float]]:
        """The ``k`` best live rows for ``query`` (a vector), best first, as
        ``(record, score)``: cosine similarity or inner product (higher is better), or
        squared l2 distance (lower is better). ``where`` keeps only records it accepts.

        Each segment is searched on its codes (re-ranked by its fine tier if the store
        has one) restricted to its live, accepted rows; the segments' results are merged.
        """
        import numpy as np

        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        if k <= 0:
            return []
        with self._lock:
            self._refresh()
            if self.dims is None:
                return []
            if q.shape[1] != self.dims:
                raise ValueError(f"a query of {q.shape[1]} dims; this store holds {self.dims} dims")
            hits: List[Tuple[float, int, int]] = []
            for si, s in enumerate(self.segments):
                if where is None and not s.deleted:
                    allowed = None
                else:
                    recs = s.records
                    allowed = [
                        r for r in range(s.rows)
                        if r not in s.deleted and (where is None or where(recs[r]))
                    ]
                    if not allowed:
                        continue
                kk = min(k, s.rows if allowed is None else len(allowed))
                kw: Dict[str, Any] = {"metric": self.metric, "threads": _threads(s.rows)}
                if allowed is not None:
                    kw["filter_ids"] = np.asarray(allowed, dtype=np.int64)
                if s.fine:
                    kw["rescore"] = max(self.rescore, kk)
                    kw["rescore_with"] = s.container(fine=True)
                ids, scores = s.container().search(q, kk, **kw)
                for r, sc in zip(ids[0].tolist(), scores[0].tolist()):
                    if r >= 0:
                        hits.append((sc, si, r))
            sign = 1.0 if self.metric == "l2" else -1.0
            hits.sort(key=lambda h: (sign * h[0], h[1], h[2]))
            return [(self.segments[si].records[r], float(sc)) for sc, si, r in hits[:k]]

    def close(self) -> None:
        with self._lock:
            for s in self.segments:
                s.close()
