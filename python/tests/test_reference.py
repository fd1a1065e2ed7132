"""The prototype's API, bit for bit with the int8 reference (shared/reference/int8_reference.py
produced the committed fixtures; `reference_*` below restate its definition in numpy)."""

import numpy as np
import pytest

import vectro

from conftest import FIXTURES, embeddings


def reference_quantize(v):
    v = np.asarray(v, dtype=np.float32)
    max_abs = np.abs(v).max(axis=1)
    scales = (max_abs / np.float32(127)).astype(np.float32)
    scales[max_abs == 0] = np.float32(1.0)
    q = np.rint(v / scales[:, None]).astype(np.int8)
    return q, scales


def reference_reconstruct(q, scales):
    return (q.astype(np.float32) * scales[:, None].astype(np.float32)).astype(np.float32)


def bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint8)


def test_quantize_and_reconstruct_match_the_reference_fixtures():
    x = np.load(FIXTURES / "int8_input.npy")
    q, s = vectro.quantize_embeddings(x)
    assert q.dtype == np.int8 and s.dtype == np.float32
    assert np.array_equal(q, np.load(FIXTURES / "int8_codes.npy"))
    assert np.array_equal(bits(s), bits(np.load(FIXTURES / "int8_scales.npy")))
    r = vectro.reconstruct_embeddings(q, s)
    assert np.array_equal(bits(r), bits(np.load(FIXTURES / "int8_recon.npy")))
    # float64 and big-endian inputs are converted as the prototype's np.asarray(x, float32).
    for name in ("int8_input_f64.npy", "int8_input_be.npy"):
        q2, s2 = vectro.quantize_embeddings(np.load(FIXTURES / name))
        assert np.array_equal(q2, q) and np.array_equal(bits(s2), bits(s))


def test_compressed_int8_decodes_to_the_reference_reconstruction(tmp_path):
    x = np.load(FIXTURES / "int8_input.npy")
    vectro.compress(x, tmp_path / "x.vectro", chunk_rows=10)
    assert np.array_equal(bits(vectro.decompress(tmp_path / "x.vectro")), bits(np.load(FIXTURES / "int8_recon.npy")))


def test_the_numpy_restatement_on_edge_cases():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 33)).astype(np.float32) * 3
    x[0] = 0  # all-zero row: scale 1.0
    x[1, :] = np.arange(33, dtype=np.float32) - 16  # .5 ties after division
    x[2, :] = 127.0 * np.float32(0.5)
    x[3, 7] = 1e30  # one huge value
    x[4] = 1e-30
    q, s = vectro.quantize_embeddings(x)
    rq, rs = reference_quantize(x)
    assert np.array_equal(q, rq) and np.array_equal(bits(s), bits(rs))
    assert np.array_equal(bits(vectro.reconstruct_embeddings(q, s)), bits(reference_reconstruct(rq, rs)))
    # A flat q, as the .npz stores it, with dims.
    assert np.array_equal(vectro.reconstruct_embeddings(q.reshape(-1), s, dims=33), reference_reconstruct(rq, rs))


def test_npz_in_the_prototypes_layout(tmp_path):
    x = np.load(FIXTURES / "npz_input.npy")
    q, s = vectro.quantize_embeddings(x)
    vectro.save_npz(tmp_path / "ours.npz", q, s)
    ref = np.load(FIXTURES / "npz_reference.npz")
    ours = np.load(tmp_path / "ours.npz")
    assert sorted(ours.files) == sorted(ref.files) == ["dims", "q", "scales"]
    for m in ref.files:
        assert ours[m].dtype == ref[m].dtype and ours[m].shape == ref[m].shape
        assert np.array_equal(ours[m], ref[m]), m
    q2, s2, d = vectro.load_npz(FIXTURES / "npz_reference.npz")
    assert d == 24 and np.array_equal(q2, q) and np.array_equal(s2, s)
    # Into a container and back out, unchanged.
    vectro.import_npz(FIXTURES / "npz_reference.npz", tmp_path / "x.vectro")
    c = vectro.open(tmp_path / "x.vectro")
    assert np.array_equal(bits(c[:]), bits(np.load(FIXTURES / "npz_reference_recon.npy")))
    c.to_npz(tmp_path / "back.npz")
    q3, s3, d3 = vectro.load_npz(tmp_path / "back.npz")
    assert d3 == 24 and np.array_equal(q3, q) and np.array_equal(s3, s)


def test_quantize_refuses_what_the_reference_cannot_encode():
    with pytest.raises(vectro.BadInputError, match="2-D"):
        vectro.quantize_embeddings(np.zeros(5, dtype=np.float32))
    x = embeddings(10, 8)
    x[6, 2] = np.inf
    with pytest.raises(vectro.BadInputError, match="row 6, column 2 is inf"):
        vectro.quantize_embeddings(x)
