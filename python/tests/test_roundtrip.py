"""Round trips per codec, against the CLI: the same file from both, the same rows back."""

import json

import numpy as np
import pytest

import vectro

from conftest import embeddings

CODECS = [
    ("int8", None),
    ("int8", 3),
    ("int8:rotate=1", None),
    ("int4", None),
    ("int4:rotate=1", None),
    ("binary", None),
    ("binary-itq", None),
    ("f16", None),
    ("bf16", None),
    ("pq:m=8,nbits=4", None),
    ("opq:m=8,nbits=4", 1),
]


@pytest.mark.parametrize("codec,zstd", CODECS)
def test_same_file_as_the_cli_and_same_rows_back(tmp_path, cli, emb, codec, zstd):
    npy = tmp_path / "x.npy"
    np.save(npy, emb)
    ours, theirs = tmp_path / "py.vectro", tmp_path / "cli.vectro"
    extra = [] if zstd is None else ["--zstd", str(zstd)]
    s = vectro.compress(npy, ours, codec=codec, zstd=zstd, chunk_rows=500)
    out = cli("compress", "--in", npy, "--out", theirs, "--codec", codec, "--chunk-rows", "500", "--json", *extra)
    expect = json.loads(out)
    # The summary has the CLI's keys (but the CLI's schema version), and the same values
    # where they do not measure time.
    assert set(s) | {"schema"} == set(expect)
    for key in ("codec", "rows", "dims", "chunks", "input_bytes", "output_bytes", "ratio", "zstd"):
        assert s[key] == expect[key], key
    assert ours.read_bytes() == theirs.read_bytes()

    # Decoded rows: ours in memory, the CLI's .npy, and random rows through the Container.
    rows = vectro.decompress(ours)
    cli("decompress", "--in", theirs, "--out", tmp_path / "cli.npy")
    want = np.load(tmp_path / "cli.npy")
    assert rows.dtype == np.float32 and rows.shape == emb.shape
    assert np.array_equal(rows, want)
    ids = np.random.default_rng(1).integers(0, len(emb), 200)
    with vectro.open(ours) as c:
        assert np.array_equal(c[ids], want[ids])
        assert np.array_equal(c[ids.tolist()], want[ids])
        assert np.array_equal(c[int(ids[0])], want[ids[0]])
        assert np.array_equal(c[-1], want[-1])
        assert np.array_equal(c[123:1789], want[123:1789])
        assert np.array_equal(c[5:2000:7], want[5:2000:7])
        assert np.array_equal(c.get_many(ids), want[ids])
        mask = np.zeros(len(emb), dtype=bool)
        mask[ids] = True
        assert np.array_equal(c[mask], want[mask])
        chunks = list(c.iter_chunks())
        assert [f for f, _ in chunks] == list(range(0, len(emb), 500))
        assert np.array_equal(np.concatenate([r for _, r in chunks]), want)

    # The .npy written by decompress(out=...) is the CLI's, byte for byte.
    d = vectro.decompress(ours, tmp_path / "py.npy")
    assert d["rows"] == len(emb)
    assert (tmp_path / "py.npy").read_bytes() == (tmp_path / "cli.npy").read_bytes()


@pytest.mark.parametrize("codec", ["int8", "int4:rotate=1", "binary", "f16", "pq:m=8,nbits=4"])
def test_an_array_in_memory_gives_the_rows_a_npy_file_gives(tmp_path, emb, codec):
    np.save(tmp_path / "x.npy", emb)
    vectro.compress(tmp_path / "x.npy", tmp_path / "file.vectro", codec=codec, chunk_rows=700)
    s = vectro.compress(emb, tmp_path / "mem.vectro", codec=codec, chunk_rows=700, name="emb")
    assert s["input"] == "emb" and s["rows"] == len(emb)
    a, b = vectro.open(tmp_path / "file.vectro"), vectro.open(tmp_path / "mem.vectro")
    assert a.codec == b.codec and b.metadata["source"] == "emb"
    assert np.array_equal(a[:], b[:])
    if codec in ("int8", "binary", "pq:m=8,nbits=4"):
        qa, sa = a.codes()
        qb, sb = b.codes()
        assert np.array_equal(qa, qb)
        assert (sa is None and sb is None) or np.array_equal(sa, sb)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64_arrays_compress_as_their_npy_files_do(tmp_path, emb, dtype):
    x = emb.astype(dtype)
    np.save(tmp_path / "x.npy", x)
    vectro.compress(tmp_path / "x.npy", tmp_path / "file.vectro")
    vectro.compress(x, tmp_path / "mem.vectro")
    assert np.array_equal(vectro.decompress(tmp_path / "file.vectro"), vectro.decompress(tmp_path / "mem.vectro"))


def test_raw_codes_are_the_codecs_arrays(tmp_path, emb):
    vectro.compress(emb, tmp_path / "i8.vectro", chunk_rows=999)
    with vectro.open(tmp_path / "i8.vectro") as c:
        q, s = c.codes()
        assert q.dtype == np.int8 and q.shape == emb.shape and s.shape == (len(emb),)
        # The prototype's reconstruction of the codes is the container's rows.
        assert np.array_equal(vectro.reconstruct_embeddings(q, s), c[:])
        q2, s2 = c.codes(1000, 1010)
        assert np.array_equal(q2, q[1000:1010]) and np.array_equal(s2, s[1000:1010])
    vectro.compress(emb, tmp_path / "b.vectro", codec="binary")
    with vectro.open(tmp_path / "b.vectro") as c:
        bits, scales = c.codes()
        assert bits.dtype == np.uint8 and bits.shape == (len(emb), 8)
        signs = np.unpackbits(bits, axis=1, bitorder="little")[:, :64].astype(np.float32) * 2 - 1
        assert np.array_equal(signs * scales[:, None], c[:])
    vectro.compress(emb, tmp_path / "pq.vectro", codec="pq:m=16,nbits=8")
    with vectro.open(tmp_path / "pq.vectro") as c:
        codes, none = c.codes()
        assert none is None and codes.dtype == np.uint8 and codes.shape == (len(emb), 16)
    vectro.compress(emb, tmp_path / "f16.vectro", codec="f16")
    with vectro.open(tmp_path / "f16.vectro") as c, pytest.raises(vectro.UsageError, match="no raw code array"):
        c.codes()


def test_container_properties_and_train_reuse(tmp_path, emb):
    book = tmp_path / "book.vcb"
    t = vectro.train(emb, book, "pq:m=8,nbits=4")
    assert t["codec"].startswith("pq:m=8,nbits=4") and book.stat().st_size == t["bytes"]
    other = embeddings(500, 64, seed=9)
    s = vectro.compress(other, tmp_path / "o.vectro", codebook=book)
    assert s["codec"] == t["codec"] and not s["training_reused"]
    c = vectro.open(tmp_path / "o.vectro")
    assert len(c) == 500 and c.shape == (500, 64) and c.dims == 64
    assert c.codec == t["codec"] and c.num_chunks >= 1 and c.nbytes == s["output_bytes"]
    assert "tool" in c.metadata and repr(c).startswith("vectro.Container(")
    assert c.verify()["ok"]
    c.close()
    assert c.closed
    with pytest.raises(ValueError, match="closed"):
        c[0]


def test_eval_has_the_cli_keys_and_gates(tmp_path, cli, emb):
    np.save(tmp_path / "x.npy", emb)
    vectro.compress(tmp_path / "x.npy", tmp_path / "x.vectro")
    r = vectro.eval(tmp_path / "x.npy", tmp_path / "x.vectro", k=[1, 10], min_cosine=0.99)
    want = json.loads(cli("eval", "--orig", tmp_path / "x.npy", "--comp", tmp_path / "x.vectro", "--k", "1,10",
                          "--min-cosine", "0.99", "--json"))
    # The CLI prints the library's report in the one --json vocabulary (docs/cli.md): the
    # paths it was given, a schema version, and input_bytes/container_bytes for the dict's
    # original_bytes/compressed_bytes. Everything else is the same key.
    cli_names = {"input_bytes": "original_bytes", "container_bytes": "compressed_bytes"}
    assert set(r) == {cli_names.get(k, k) for k in want} - {"schema", "input", "container"}
    assert r["original_bytes"] == want["input_bytes"]
    assert r["compressed_bytes"] == want["container_bytes"]
    for key in ("rows", "dims", "cosine_mean", "cosine_min", "mse", "recall", "gates"):
        assert r[key] == want[key], key
    # An array as the original gives the same measurements.
    r2 = vectro.eval(emb, tmp_path / "x.vectro", k=[1, 10])
    assert r2["cosine_mean"] == r["cosine_mean"] and r2["recall"] == r["recall"]
