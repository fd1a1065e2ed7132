"""binary-itq trained once and reused through a .vcb; decompress in the input's dtype."""

import numpy as np
import pytest

import vectro
from conftest import embeddings


def test_binary_itq_trains_to_a_codebook_that_gives_the_training_runs_bytes(tmp_path, emb):
    book = tmp_path / "itq.vcb"
    t = vectro.train(emb, book, "binary-itq", train_rows=1000)
    assert t["codec"] == "binary-itq" and t["itq_iterations"] == 50 and t["train_rows"] == 1000
    assert book.stat().st_size == t["bytes"]
    trained = vectro.compress(emb, tmp_path / "a.vectro", "binary-itq", train_rows=1000, name="x")
    frozen = vectro.compress(emb, tmp_path / "b.vectro", codebook=book, name="x")
    assert trained["codec"] == frozen["codec"] == "binary-itq"
    assert (tmp_path / "a.vectro").read_bytes() == (tmp_path / "b.vectro").read_bytes()
    # A codec the codebook does not fit is one usage error, whatever the codec.
    for codec in ("int8", "pq:m=8", "binary"):
        with pytest.raises(vectro.UsageError, match="holds a binary-itq codebook"):
            vectro.compress(emb, tmp_path / "c.vectro", codec, codebook=book)
    assert not (tmp_path / "c.vectro").exists()
    with pytest.raises(vectro.UsageError, match="binary-itq: unknown parameter .x.; valid: none"):
        vectro.train(emb, tmp_path / "d.vcb", "binary-itq:x=1")


def test_train_progress_callback_counts_iterations(tmp_path, emb):
    seen = []
    vectro.train(emb, tmp_path / "p.vcb", "binary-itq", train_rows=500, progress=lambda d, t: seen.append((d, t)))
    assert seen and all(0 <= d <= t for d, t in seen)


def test_a_float16_input_decompresses_to_float16_and_numpy_loads_every_dtype(tmp_path, cli):
    x = embeddings(700, 48, seed=3).astype(np.float16)
    np.save(tmp_path / "h.npy", x)
    vectro.compress(tmp_path / "h.npy", tmp_path / "h.vectro", "f16")
    s = vectro.decompress(tmp_path / "h.vectro", tmp_path / "back.npy")
    back = np.load(tmp_path / "back.npy")
    assert s["dtype"] == "f16" and back.dtype == np.float16 and back.shape == x.shape
    assert back.tobytes() == x.tobytes()
    assert (tmp_path / "back.npy").stat().st_size == (tmp_path / "h.npy").stat().st_size
    arr = vectro.decompress(tmp_path / "h.vectro")
    assert arr.dtype == np.float16 and arr.tobytes() == x.tobytes()
    # The CLI writes the same file.
    cli("decompress", "--in", tmp_path / "h.vectro", "--out", tmp_path / "cli.npy")
    assert (tmp_path / "cli.npy").read_bytes() == (tmp_path / "back.npy").read_bytes()
    # Asked for: float32 exactly the float16 values; bf16 bit patterns as uint16.
    wide = vectro.decompress(tmp_path / "h.vectro", dtype="f32")
    assert wide.dtype == np.float32 and np.array_equal(wide, x.astype(np.float32))
    vectro.decompress(tmp_path / "h.vectro", tmp_path / "bf.npy", dtype="bf16")
    bf = np.load(tmp_path / "bf.npy")
    assert bf.dtype == np.uint16
    as_f32 = (bf.astype(np.uint32) << 16).view(np.float32)
    assert np.allclose(as_f32, x.astype(np.float32), rtol=2**-8, atol=0)
    assert np.array_equal(vectro.decompress(tmp_path / "h.vectro", dtype="bf16"), bf)
    with pytest.raises(vectro.UsageError, match="dtype"):
        vectro.decompress(tmp_path / "h.vectro", dtype="f64")


def test_float64_and_float32_inputs_decompress_to_float32(tmp_path):
    for dt in (np.float64, np.float32):
        x = embeddings(300, 16, seed=5).astype(dt)
        np.save(tmp_path / "x.npy", x)
        vectro.compress(tmp_path / "x.npy", tmp_path / "x.vectro", "int8", force=True)
        vectro.decompress(tmp_path / "x.vectro", tmp_path / "x_back.npy", force=True)
        back = np.load(tmp_path / "x_back.npy")
        assert back.dtype == np.float32 and np.allclose(back, x, atol=0.01)
        assert vectro.decompress(tmp_path / "x.vectro").dtype == np.float32
        half = vectro.decompress(tmp_path / "x.vectro", dtype="f16")
        assert half.dtype == np.float16 and np.array_equal(half, back.astype(np.float16))


def test_a_value_beyond_float16_raises_naming_row_and_column(tmp_path):
    x = embeddings(100, 8, seed=1)
    x[42, 5] = 1e6
    vectro.compress(x, tmp_path / "big.vectro", "int8")
    with pytest.raises(vectro.BadInputError, match="row 42, column 5"):
        vectro.decompress(tmp_path / "big.vectro", tmp_path / "big.npy", dtype="f16")
    assert not (tmp_path / "big.npy").exists()
    with pytest.raises(vectro.BadInputError, match="row 42, column 5"):
        vectro.decompress(tmp_path / "big.vectro", dtype="f16")
