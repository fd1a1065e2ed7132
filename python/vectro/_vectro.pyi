"""Type stubs of the extension module (the Rust side of `vectro`)."""

import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, "os.PathLike[str]"]
_Progress = Union[bool, Callable[[int, int], Any], None]
_Index = Union[int, slice, Sequence[int], npt.NDArray[np.integer], npt.NDArray[np.bool_]]

__version__: str

class VectroError(Exception):
    """Base class of every error Vectro raises; the message is the library's."""

class BadInputError(VectroError):
    """The input data is unusable: wrong shape or dtype, NaN/Inf, values out of a codec's range."""

class CorruptError(VectroError):
    """A container (or codebook, or .npz) is malformed, truncated or fails its checksums."""

    report: Dict[str, Any]

class VectroIOError(VectroError):
    """The operating system failed an operation (open, read, write, lock); a retry may help."""

class UsageError(VectroError):
    """The request itself is invalid: a bad option, an existing output without force=True, ..."""

class QualityGateError(VectroError):
    """eval() measured a quality below a gate; `.report` holds the measurements."""

    report: Dict[str, Any]

class CancelledError(VectroError):
    """The run was cancelled by the library's own cancel flag."""

class InternalError(VectroError):
    """A bug in Vectro (a worker panicked); please report it."""

class Container:
    """An open container, memory-mapped; safe to share between threads."""

    def __init__(self, path: _Path) -> None: ...
    def __len__(self) -> int: ...
    @property
    def shape(self) -> Tuple[int, int]: ...
    @property
    def dims(self) -> int: ...
    @property
    def codec(self) -> str: ...
    @property
    def tiers(self) -> List[str]: ...
    @property
    def metadata(self) -> Dict[str, str]: ...
    @property
    def path(self) -> str: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def num_chunks(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def id_kind(self) -> str: ...
    @property
    def first_row(self) -> int: ...
    def ids(
        self, start: int = 0, stop: Optional[int] = None
    ) -> Union[npt.NDArray[np.uint64], List[str]]: ...
    def payload(
        self, start: int = 0, stop: Optional[int] = None
    ) -> Union[None, Any, Dict[str, List[Any]]]: ...
    @property
    def payload_columns(self) -> List[Tuple[str, str]]: ...
    def __getitem__(self, key: _Index) -> npt.NDArray[np.float32]: ...
    def get_many(self, ids: Union[Sequence[int], npt.NDArray[np.integer]]) -> npt.NDArray[np.float32]: ...
    def search(
        self,
        queries: npt.ArrayLike,
        k: int = 10,
        *,
        metric: str = "cos",
        rescore: int = 0,
        rescore_with: Optional[Union["Container", _Path]] = None,
        filter_ids: Optional[Union[Sequence[int], npt.NDArray[np.integer]]] = None,
        hamming: bool = False,
        threads: int = 0,
        fast_scan_candidates: int = 0,
    ) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def codes(
        self, start: int = 0, stop: Optional[int] = None
    ) -> Tuple[npt.NDArray[Any], Optional[npt.NDArray[np.float32]]]: ...
    def iter_chunks(self) -> Iterator[Tuple[int, npt.NDArray[np.float32]]]: ...
    def verify(self) -> Dict[str, Any]: ...
    def to_npz(self, out: _Path, *, force: bool = False, fsync: bool = True) -> Dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Container": ...
    def __exit__(self, *exc: Any) -> bool: ...

def compress(
    data: Union[npt.NDArray[np.floating], str],
    out: str,
    codec: Optional[str] = None,
    *,
    zstd: Optional[int] = None,
    threads: int = 0,
    chunk_rows: Optional[int] = None,
    codebook: Optional[str] = None,
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
    progress: _Progress = None,
    ids: Optional[str] = None,
    column: Optional[str] = None,
    id_column: Optional[str] = None,
    payload_columns: Optional[List[str]] = None,
    rescore: Optional[str] = None,
) -> Dict[str, Any]: ...
def decompress_to(
    path: str,
    out: str,
    *,
    dtype: Optional[str] = None,
    threads: int = 0,
    force: bool = False,
    fsync: bool = True,
    progress: _Progress = None,
) -> Dict[str, Any]: ...
def decompress_array(path: str, dtype: Optional[str] = None) -> Tuple[npt.NDArray[Any], str]: ...
def train(
    data: Union[npt.NDArray[np.floating], str],
    out: str,
    codec: str,
    *,
    train_rows: Optional[int] = None,
    threads: int = 0,
    force: bool = False,
    name: Optional[str] = None,
    progress: _Progress = None,
    column: Optional[str] = None,
) -> Dict[str, Any]: ...
def eval(
    orig: str,
    comp: str,
    *,
    queries: Optional[str] = None,
    k: List[int] = ...,
    sample_queries: int = 100,
    seed: int = 42,
    metric: str = "cos",
    rerank: int = 100,
    threads: int = 0,
    exact_float_search: bool = False,
    min_cosine: Optional[float] = None,
    min_recall: Optional[float] = None,
    max_nmse: Optional[float] = None,
    progress: _Progress = None,
    column: Optional[str] = None,
) -> Dict[str, Any]: ...
def report(
    orig: str,
    containers: List[str],
    out: Optional[str] = None,
    *,
    codecs: List[str] = ...,
    rows: int = 100_000,
    svg_dir: Optional[str] = None,
    png: bool = False,
    peers_json: Optional[str] = None,
    k: int = 10,
    sample_queries: int = 100,
    seed: int = 42,
    metric: str = "cos",
    rerank: int = 100,
    pca_sample: int = 500,
    movement_queries: int = 5,
    threads: int = 0,
    force: bool = False,
    command: str = "",
    progress: _Progress = None,
    column: Optional[str] = None,
) -> Dict[str, Any]: ...
def verify(path: str) -> Dict[str, Any]: ...
def merge(
    parts: List[str], out: str, *, force: bool = False, fsync: bool = True, progress: _Progress = None
) -> Dict[str, Any]: ...
def import_npz(
    npz: str, out: str, *, chunk_rows: Optional[int] = None, force: bool = False, fsync: bool = True
) -> Dict[str, Any]: ...
def quantize_embeddings(x: npt.NDArray[np.float32]) -> Tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]: ...
def reconstruct_embeddings(q: npt.NDArray[np.int8], scales: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
def _borrowed_address(arr: npt.NDArray[Any]) -> int: ...
def _time_get_many(path: str, ids: npt.NDArray[np.uint64]) -> List[float]: ...
