"""Every error class, each carrying the library's message (naming the file, row, field)."""

import numpy as np
import pytest

import vectro

from conftest import embeddings

SUBCLASSES = [
    vectro.BadInputError,
    vectro.CorruptError,
    vectro.VectroIOError,
    vectro.UsageError,
    vectro.QualityGateError,
    vectro.CancelledError,
    vectro.InternalError,
]


def test_the_hierarchy():
    assert issubclass(vectro.VectroError, Exception)
    for cls in SUBCLASSES:
        assert issubclass(cls, vectro.VectroError), cls
        assert cls.__doc__


def test_bad_input(tmp_path):
    x = embeddings(100, 16)
    x[42, 3] = np.nan
    with pytest.raises(vectro.BadInputError, match=r"^<array>: row 42, column 3 is NaN"):
        vectro.compress(x, tmp_path / "x.vectro")
    with pytest.raises(vectro.BadInputError, match="dtype int32 is not supported"):
        vectro.compress(np.zeros((3, 4), dtype=np.int32), tmp_path / "x.vectro")
    with pytest.raises(vectro.BadInputError, match="not 2-D"):
        vectro.compress(np.zeros(8, dtype=np.float32), tmp_path / "x.vectro")
    with pytest.raises(vectro.BadInputError, match="not C-contiguous"):
        vectro.compress(embeddings(10, 16).T, tmp_path / "x.vectro")
    with pytest.raises(vectro.BadInputError, match="empty"):
        vectro.compress(np.zeros((0, 4), dtype=np.float32), tmp_path / "x.vectro")
    np.save(tmp_path / "bad.npy", x)
    with pytest.raises(vectro.BadInputError, match=r"bad\.npy: row 42, column 3 is NaN"):
        vectro.compress(tmp_path / "bad.npy", tmp_path / "x.vectro")
    with pytest.raises(vectro.BadInputError, match="beyond float32's range"):
        vectro.compress(np.full((2, 2), 1e300), tmp_path / "x.vectro")
    # Nothing is left behind by a bad input.
    assert not (tmp_path / "x.vectro").exists()


def test_corrupt(tmp_path):
    vectro.compress(embeddings(2000, 16), tmp_path / "x.vectro", chunk_rows=100)
    data = bytearray((tmp_path / "x.vectro").read_bytes())
    (tmp_path / "short.vectro").write_bytes(data[: len(data) // 2])
    with pytest.raises(vectro.CorruptError, match="short.vectro"):
        vectro.open(tmp_path / "short.vectro")
    data[len(data) // 3] ^= 0x55  # inside a chunk's payload
    (tmp_path / "flip.vectro").write_bytes(data)
    c = vectro.open(tmp_path / "flip.vectro")  # the index is intact: opens
    with pytest.raises(vectro.CorruptError, match="flip.vectro") as e:
        c.verify()
    assert e.value.report["ok"] is False and e.value.report["first_bad_chunk"]["part"] == "chunk"
    with pytest.raises(vectro.CorruptError, match="flip.vectro"):
        c[:]
    (tmp_path / "not.vectro").write_bytes(b"hello world, not a container")
    with pytest.raises(vectro.CorruptError):
        vectro.open(tmp_path / "not.vectro")


def test_io(tmp_path):
    with pytest.raises(vectro.VectroIOError, match="missing.vectro"):
        vectro.open(tmp_path / "missing.vectro")
    with pytest.raises(vectro.VectroIOError, match="missing.npy"):
        vectro.compress(tmp_path / "missing.npy", tmp_path / "x.vectro")


def test_usage(tmp_path):
    x = embeddings(50, 8)
    vectro.compress(x, tmp_path / "x.vectro")
    with pytest.raises(vectro.UsageError, match="already exists; pass --force"):
        vectro.compress(x, tmp_path / "x.vectro")
    vectro.compress(x, tmp_path / "x.vectro", force=True)
    with pytest.raises(vectro.UsageError, match="nope"):
        vectro.compress(x, tmp_path / "y.vectro", codec="nope")
    with pytest.raises(vectro.UsageError, match="chunk-rows"):
        vectro.compress(x, tmp_path / "y.vectro", chunk_rows=0)
    with pytest.raises(vectro.UsageError, match="metric"):
        vectro.eval(x, tmp_path / "x.vectro", metric="manhattan")
    with pytest.raises(TypeError, match="numpy array or a path"):
        vectro.compress(42, tmp_path / "y.vectro")
    c = vectro.open(tmp_path / "x.vectro")
    with pytest.raises(IndexError, match="row 50 is out of range for 50 rows"):
        c[50]
    with pytest.raises(IndexError, match="row -51"):
        c[[0, -51]]
    with pytest.raises(TypeError, match="integers"):
        c[[0.5]]


def test_quality_gate(tmp_path):
    x = embeddings(500, 32)
    np.save(tmp_path / "x.npy", x)
    vectro.compress(tmp_path / "x.npy", tmp_path / "b.vectro", codec="binary")
    with pytest.raises(vectro.QualityGateError, match="cosine_mean = .* does not meet --min-cosine 0.999") as e:
        vectro.eval(tmp_path / "x.npy", tmp_path / "b.vectro", min_cosine=0.999)
    assert e.value.report["gates"][0]["passed"] is False
    assert e.value.report["cosine_mean"] < 0.999


def test_errors_pickle_as_themselves():
    # Raised in a worker process (multiprocessing, Ray) they reach the caller as the
    # same class, so `except vectro.BadInputError` works there too.
    import pickle

    for cls in (vectro.VectroError, vectro.BadInputError, vectro.UsageError, vectro.CorruptError):
        e = pickle.loads(pickle.dumps(cls("row 3 is NaN")))
        assert type(e) is cls and str(e) == "row 3 is NaN"
