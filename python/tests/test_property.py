"""Hypothesis: any finite float32 matrix round-trips as the codecs define."""

import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import vectro

from test_reference import reference_quantize, reference_reconstruct

shapes = st.tuples(st.integers(1, 60), st.integers(1, 40))
finite = st.floats(-1e4, 1e4, width=32, allow_subnormal=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, shapes, elements=finite), st.integers(1, 17))
def test_int8_and_f16_round_trip(x, chunk_rows):
    with tempfile.TemporaryDirectory() as d:
        vectro.compress(x, f"{d}/i8.vectro", chunk_rows=chunk_rows, fsync=False)
        c = vectro.open(f"{d}/i8.vectro")
        assert c.shape == x.shape
        got = c[:]
        want = reference_reconstruct(*reference_quantize(x))
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
        q, s = c.codes()
        rq, rs = reference_quantize(x)
        assert np.array_equal(q, rq) and np.array_equal(s, rs)
        vectro.compress(x, f"{d}/f16.vectro", codec="f16", chunk_rows=chunk_rows, fsync=False)
        assert np.array_equal(vectro.decompress(f"{d}/f16.vectro"), x.astype(np.float16).astype(np.float32))
        # Any rows, any order, as numpy indexing gives them.
        ids = np.arange(len(x))[::-1]
        assert np.array_equal(c[ids], got[ids])
