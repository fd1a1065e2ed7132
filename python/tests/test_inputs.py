"""Inputs written by the producers users have: Parquet and Arrow by pyarrow, tensors by
safetensors, .npz by numpy. Each must give, through the CLI and the Python API, the
container that the same rows saved with numpy.save give (the same chunks, byte for byte),
and each bad input must be refused naming the file, row group and row (exit code 3, no
output)."""

import pathlib
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import safetensors.numpy

import vectro

from conftest import embeddings


def payloads(path, chunk_rows=64):
    """A container but for its metadata (which names the source): codec, shape and the
    chunks' bytes, which lie between the header and the index (FORMAT.md)."""
    c = vectro.open(path)
    data = pathlib.Path(path).read_bytes()
    header_len = int.from_bytes(data[8:12], "little")
    n_chunks = -(-len(c) // chunk_rows)
    index_and_trailer = 16 + 32 * n_chunks + 40
    return c.codec, c.shape, data[header_len : len(data) - index_and_trailer]


def run(vectro_bin, *args):
    return subprocess.run([str(vectro_bin), *map(str, args)], capture_output=True, text=True)


def compress_cli(vectro_bin, inp, out, codec="int8", *extra):
    r = run(vectro_bin, "compress", "--in", inp, "--out", out, "--codec", codec, "--chunk-rows", "64", "--quiet", "--force", *extra)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def x():
    return embeddings(1000, 48, seed=3)


def list_table(x, column="embedding", ids=True):
    cols = {}
    if ids:
        cols["id"] = pa.array([f"doc-{i}" for i in range(len(x))])
    cols[column] = pa.array(list(x), type=pa.list_(pa.float32()))
    return pa.table(cols)


def fixed_table(x):
    flat = pa.array(x.reshape(-1), type=pa.float32())
    return pa.table({"id": pa.array(np.arange(len(x), dtype=np.uint64)), "emb": pa.FixedSizeListArray.from_arrays(flat, x.shape[1])})


def test_pyarrow_files_give_the_npy_container(tmp_path, vectro_bin, x):
    npy = tmp_path / "x.npy"
    np.save(npy, x)
    pq.write_table(list_table(x), tmp_path / "list.parquet", row_group_size=300)
    pq.write_table(fixed_table(x), tmp_path / "fixed.parquet", compression="zstd")
    pq.write_table(list_table(x).cast(pa.schema([("id", pa.string()), ("embedding", pa.large_list(pa.float32()))])), tmp_path / "large.parquet", compression="lz4", row_group_size=128)
    feather.write_feather(list_table(x), tmp_path / "x.feather", chunksize=333)
    feather.write_feather(fixed_table(x), tmp_path / "x.arrow", compression="uncompressed")
    safetensors.numpy.save_file({"emb": x, "bias": x[0].copy()}, str(tmp_path / "m.safetensors"))
    np.savez(tmp_path / "s.npz", embeddings=x, ids=np.arange(len(x)))
    np.savez_compressed(tmp_path / "c.npz", embeddings=x, ids=np.arange(len(x)))
    np.asarray(x).tofile(tmp_path / "raw")
    inputs = [
        tmp_path / "list.parquet",
        tmp_path / "fixed.parquet",
        tmp_path / "large.parquet",
        tmp_path / "x.feather",
        tmp_path / "x.arrow",
        f"{tmp_path / 'm.safetensors'}:emb",
        tmp_path / "m.safetensors",  # the only 2-D tensor
        f"{tmp_path / 's.npz'}:embeddings",
        f"{tmp_path / 'c.npz'}:embeddings",
    ]
    for codec in ["int8", "f16"]:
        want = payloads(compress_cli(vectro_bin, npy, tmp_path / f"want-{codec}.vectro", codec))
        for i, inp in enumerate(inputs):
            for threads in ["1", "2"]:
                got = compress_cli(vectro_bin, inp, tmp_path / f"{i}-{codec}.vectro", codec, "--threads", threads)
                assert payloads(got) == want, inp
        # The Python API reads the same files.
        for i, inp in enumerate(inputs[:5]):
            out = tmp_path / f"py-{i}-{codec}.vectro"
            s = vectro.compress(inp, out, codec, chunk_rows=64, force=True, fsync=False)
            assert s["rows"] == 1000 and s["dims"] == 48
            assert payloads(out) == want, inp


def test_float16_and_float64_columns(tmp_path, vectro_bin, x):
    for dtype, pa_type in [(np.float16, pa.float16()), (np.float64, pa.float64())]:
        y = x.astype(dtype)
        npy = tmp_path / "y.npy"
        np.save(npy, y)
        t = pa.table({"v": pa.FixedSizeListArray.from_arrays(pa.array(y.reshape(-1), type=pa_type), y.shape[1])})
        pq.write_table(t, tmp_path / "y.parquet", row_group_size=100)
        want = payloads(compress_cli(vectro_bin, npy, tmp_path / "a.vectro"))
        assert payloads(compress_cli(vectro_bin, tmp_path / "y.parquet", tmp_path / "b.vectro")) == want


def test_hugging_face_shards_and_column(tmp_path, vectro_bin, x):
    data = tmp_path / "data"
    data.mkdir()
    cuts = [0, 400, 401, 1000]
    for k in range(3):
        t = list_table(x[cuts[k] : cuts[k + 1]], column="embedding")
        t = t.append_column("other", pa.array(list(x[cuts[k] : cuts[k + 1]]), type=pa.list_(pa.float32())))
        pq.write_table(t, data / f"train-{k:05d}-of-00003.parquet", row_group_size=150)
    npy = tmp_path / "x.npy"
    np.save(npy, x)
    want = payloads(compress_cli(vectro_bin, npy, tmp_path / "want.vectro"))
    r = run(vectro_bin, "compress", "--in", data, "--out", tmp_path / "o.vectro")
    assert r.returncode == 3 and "--column" in r.stderr and "embedding (list<float>)" in r.stderr, r.stderr
    assert not (tmp_path / "o.vectro").exists()
    got = compress_cli(vectro_bin, data, tmp_path / "got.vectro", "int8", "--column", "embedding")
    assert payloads(got) == want
    got = compress_cli(vectro_bin, f"{data}/train-*.parquet", tmp_path / "glob.vectro", "int8", "--column", "other")
    assert payloads(got) == want
    out = tmp_path / "py.vectro"
    vectro.compress(data, out, chunk_rows=64, column="embedding", fsync=False)
    assert payloads(out) == want
    # train and eval take the same input.
    vectro.train(data, tmp_path / "a.vcb", "pq:m=4,nbits=4", column="embedding")
    vectro.train(npy, tmp_path / "b.vcb", "pq:m=4,nbits=4")
    assert (tmp_path / "a.vcb").read_bytes() == (tmp_path / "b.vcb").read_bytes()
    r1 = vectro.eval(data, got, column="embedding", k=[1, 10])
    r2 = vectro.eval(npy, got, k=[1, 10])
    assert r1["recall"] == r2["recall"] and r1["cosine_mean"] == r2["cosine_mean"]


def refused(vectro_bin, tmp_path, inp, *needles, extra=()):
    out = tmp_path / "out.vectro"
    r = run(vectro_bin, "compress", "--in", inp, "--out", out, "--chunk-rows", "16", *extra)
    assert r.returncode == 3, r.stderr
    assert "panicked" not in r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
    assert not any(p.name.startswith("out.vectro") or ".out.vectro" in p.name for p in tmp_path.iterdir())
    with pytest.raises(vectro.BadInputError):
        vectro.compress(str(inp), out, chunk_rows=16, column=extra[1] if extra else None)
    return r.stderr


def test_bad_pyarrow_inputs(tmp_path, vectro_bin, x):
    p = tmp_path / "null.parquet"
    rows = list(x[:100])
    rows[57] = None
    pq.write_table(pa.table({"embedding": pa.array(rows, type=pa.list_(pa.float32()))}), p, row_group_size=25)
    refused(vectro_bin, tmp_path, p, "null.parquet: row group 2, row 7 (row 57 of the file)", "null")
    rows = list(x[:100])
    rows[61] = rows[61][:40]
    pq.write_table(pa.table({"embedding": pa.array(rows, type=pa.list_(pa.float32()))}), tmp_path / "ragged.parquet", row_group_size=25)
    refused(vectro_bin, tmp_path, tmp_path / "ragged.parquet", "row group 2, row 11 (row 61 of the file)", "has 40 values", "have 48")
    pq.write_table(list_table(x[:100]), tmp_path / "ok.parquet")
    refused(vectro_bin, tmp_path, tmp_path / "ok.parquet", 'no column "vec"', "id (string)", "embedding (list<float>)", extra=("--column", "vec"))
    refused(vectro_bin, tmp_path, tmp_path / "ok.parquet", 'column "id" is string, not float vectors', extra=("--column", "id"))
    b = (tmp_path / "ok.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(b[: len(b) // 2])
    refused(vectro_bin, tmp_path, tmp_path / "cut.parquet", "cut.parquet", "not a readable Parquet file")
    feather.write_feather(pa.table({"embedding": pa.array(rows, type=pa.list_(pa.float32()))}), tmp_path / "r.arrow", chunksize=30)
    refused(vectro_bin, tmp_path, tmp_path / "r.arrow", "r.arrow: record batch 2, row 1 (row 61 of the file)", "has 40 values")
    safetensors.numpy.save_file({"emb": x}, str(tmp_path / "m.safetensors"))
    refused(vectro_bin, tmp_path, f"{tmp_path / 'm.safetensors'}:embeddings", 'has no tensor "embeddings"', "emb (F32 [1000, 48])")
    np.savez(tmp_path / "z.npz", emb=x, ids=np.arange(3))
    refused(vectro_bin, tmp_path, f"{tmp_path / 'z.npz'}:nope", 'has no member "nope"', "emb, ids")
    refused(vectro_bin, tmp_path, f"{tmp_path / 'z.npz'}:ids", "z.npz:ids")
