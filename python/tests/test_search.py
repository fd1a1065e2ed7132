"""Container.search: the same results as the CLI, brute force over the decoded rows where
the codes are scored exactly, filters, rescoring with a second container, errors."""

import json

import numpy as np
import pytest

import vectro

from conftest import embeddings


@pytest.fixture
def base(tmp_path):
    x = embeddings(900, 40, seed=3)
    q = embeddings(12, 40, seed=11)  # held out: not rows of the base
    return tmp_path, x, q


def brute(rows, q, metric, k):
    d = q @ rows.T
    n = (rows * rows).sum(1)
    if metric == "cos":
        s = d / np.linalg.norm(q, axis=1, keepdims=True) / np.sqrt(n)
    elif metric == "l2":
        s = (q * q).sum(1, keepdims=True) - 2 * d + n
    else:
        s = d
    order = np.argsort(s if metric == "l2" else -s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, 1)


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
def test_float_codecs_match_numpy_brute_force(base, metric):
    tmp, x, q = base
    vectro.compress(x, tmp / "h.vectro", codec="f16", chunk_rows=128)
    with vectro.Container(tmp / "h.vectro") as c:
        rows = c[:]
        ids, scores = c.search(q, 7, metric=metric, threads=2)
        assert ids.shape == scores.shape == (12, 7)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        want_ids, want_scores = brute(rows.astype(np.float64), q.astype(np.float64), metric, 7)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
        assert (ids == want_ids).mean() > 0.95


def test_same_as_the_cli(base, cli):
    tmp, x, q = base
    vectro.compress(x, tmp / "b.vectro", codec="binary:rotate=1", chunk_rows=200)
    np.save(tmp / "q.npy", q)
    ids, scores = vectro.Container(tmp / "b.vectro").search(q, 5, metric="ip")
    out = cli("search", tmp / "b.vectro", "--queries", tmp / "q.npy", "-k", "5", "--metric", "ip")
    lines = [json.loads(l) for l in out.splitlines()]
    assert [l["ids"] for l in lines] == ids.tolist()
    np.testing.assert_array_equal(np.array([l["scores"] for l in lines], np.float32), scores)


def test_rescoring_with_int8_is_brute_force_over_the_int8_rows(base):
    tmp, x, q = base
    vectro.compress(x, tmp / "b.vectro", codec="binary:rotate=1")
    vectro.compress(x, tmp / "i.vectro", codec="int8")
    fine = vectro.Container(tmp / "i.vectro")
    ids, scores = vectro.Container(tmp / "b.vectro").search(
        q, 10, metric="cos", hamming=True, rescore=900, rescore_with=fine
    )
    want_ids, want_scores = brute(fine[:].astype(np.float64), q.astype(np.float64), "cos", 10)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-5)
    assert (ids == want_ids).mean() > 0.95
    # A path works as well as an open container.
    ids2, _ = vectro.Container(tmp / "b.vectro").search(
        q, 10, hamming=True, rescore=900, rescore_with=tmp / "i.vectro"
    )
    np.testing.assert_array_equal(ids, ids2)


def test_filter_one_query_and_missing_results(base):
    tmp, x, q = base
    vectro.compress(x, tmp / "i.vectro", codec="int8", chunk_rows=100)
    c = vectro.Container(tmp / "i.vectro")
    allowed = np.arange(3, 900, 11)
    ids, _ = c.search(q, 8, filter_ids=allowed)
    assert np.isin(ids, allowed).all()
    ids, scores = c.search(q[0], 4, filter_ids=[5, 17])
    assert ids.shape == (1, 4)
    assert sorted(ids[0, :2].tolist()) == [5, 17]
    assert ids[0, 2:].tolist() == [-1, -1] and np.isnan(scores[0, 2:]).all()


def test_bad_queries_raise_clear_errors(base):
    tmp, x, q = base
    vectro.compress(x, tmp / "i.vectro", codec="int8")
    c = vectro.Container(tmp / "i.vectro")
    with pytest.raises(vectro.BadInputError, match="40-dimensional rows"):
        c.search(q[:, :20])
    with pytest.raises(vectro.UsageError, match="filter id 5000"):
        c.search(q, filter_ids=[1, 5000])
    with pytest.raises(vectro.UsageError, match="unknown metric"):
        c.search(q, metric="dot")
    bad = q.copy()
    bad[2, 3] = np.nan
    with pytest.raises(vectro.BadInputError, match="query 2, column 3"):
        c.search(bad)


def test_a_tiered_file_searches_its_first_tier_and_rescores_with_its_last(base):
    tmp, x, q = base
    vectro.compress(x, tmp / "t.vectro", codec="binary:rotate=1", rescore="int8", chunk_rows=128)
    vectro.compress(x, tmp / "b.vectro", codec="binary:rotate=1", chunk_rows=128)
    vectro.compress(x, tmp / "i.vectro", codec="int8", chunk_rows=128)
    with vectro.Container(tmp / "t.vectro") as t, vectro.Container(tmp / "i.vectro") as i:
        assert t.tiers == ["binary:rotate=1", "int8"]
        assert i.tiers == ["int8"]
        # Rows decode from the finest tier.
        assert np.array_equal(t[:], i[:])
        got = t.search(q, 5, rescore=40)
    with vectro.Container(tmp / "b.vectro") as b:
        want = b.search(q, 5, rescore=40, rescore_with=str(tmp / "i.vectro"))
    assert np.array_equal(got[0], want[0])
    assert np.array_equal(got[1], want[1])


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
def test_fast_scan_candidates_whole_chunk_is_exact_and_fewer_are_rescored_exactly(base, metric):
    tmp, x, q = base
    vectro.compress(x, tmp / "p4.vectro", codec="pq:m=8,nbits=4", chunk_rows=128)
    with vectro.Container(tmp / "p4.vectro") as c:
        ids, scores = c.search(q, 7, metric=metric, threads=2)
        same = c.search(q, 7, metric=metric, threads=2, fast_scan_candidates=128)
        np.testing.assert_array_equal(same[0], ids)
        np.testing.assert_array_equal(same[1], scores)
        every_ids, every_scores = c.search(q, len(x), metric=metric, threads=2)
        few_ids, few_scores = c.search(q, 7, metric=metric, threads=2, fast_scan_candidates=2)
        for i in range(len(q)):
            exact = dict(zip(every_ids[i].tolist(), every_scores[i].tolist()))
            assert [exact[j] for j in few_ids[i].tolist()] == few_scores[i].tolist()
