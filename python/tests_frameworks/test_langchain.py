"""The LangChain store against langchain-tests' standard suite (unchanged), plus what the
suite does not cover: persistence across reopen, scores, filters, tiers, crash safety."""

import json
import os

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests import VectorStoreIntegrationTests

import vectro
from vectro.langchain import VectroVectorStore


class TestVectroStandard(VectorStoreIntegrationTests):
    """langchain-tests' VectorStoreIntegrationTests, sync and async, on the default (int8)
    store with the suite's 6-dim embeddings."""

    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = VectroVectorStore(tmp_path / "store", embedding=self.get_embeddings(), fsync=False)
        try:
            yield store
        finally:
            store.delete()


class TestVectroStandardTiered(VectorStoreIntegrationTests):
    """The same suite on a two-tier store: binary codes searched, int8 rescoring."""

    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = VectroVectorStore(
            tmp_path / "store",
            embedding=self.get_embeddings(),
            codec="binary:rotate=1",
            rescore_codec="int8",
            fsync=False,
        )
        try:
            yield store
        finally:
            store.delete()


EMB = DeterministicFakeEmbedding(size=32)


def _texts(n):
    return [f"text number {i}" for i in range(n)]


def test_persist_and_reopen(tmp_path):
    p = tmp_path / "kb"
    s = VectroVectorStore.from_texts(
        _texts(50), EMB, metadatas=[{"i": i, "even": i % 2 == 0} for i in range(50)], path=p
    )
    s.add_texts(["late"], metadatas=[{"i": 99}], ids=["late-id"])
    s.delete(["late-id", s.similarity_search("text number 3", k=1)[0].id])
    before = s.similarity_search_with_score("text number 7", k=5)
    del s
    r = VectroVectorStore(p, EMB)
    assert len(r) == 49
    assert r.similarity_search_with_score("text number 7", k=5) == before
    assert before[0][0].page_content == "text number 7"
    assert r.get_by_ids(["late-id"]) == []
    # The store's files: a manifest and, per add, a container and its records.
    assert "MANIFEST.json" in os.listdir(p)
    assert len([f for f in os.listdir(p) if f.endswith(".vectro")]) == 2
    # Options of another store are refused rather than silently mixed.
    with pytest.raises(ValueError, match="codec"):
        VectroVectorStore(p, EMB, codec="int4")


def test_scores_are_cosine_of_the_decoded_rows(tmp_path):
    s = VectroVectorStore(tmp_path / "kb", EMB, fsync=False)
    texts = _texts(200)
    s.add_texts(texts)
    q = np.asarray(EMB.embed_query("a query"), dtype=np.float32)
    hits = s.similarity_search_with_score_by_vector(q.tolist(), k=10)
    seg = [f for f in os.listdir(tmp_path / "kb") if f.endswith(".vectro")][0]
    rows = vectro.decompress(tmp_path / "kb" / seg)
    cos = rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
    best = np.argsort(-cos)[:10]
    assert [d.page_content for d, _ in hits] == [texts[i] for i in best]
    np.testing.assert_allclose([sc for _, sc in hits], cos[best], atol=2e-3)
    # and the relevance scores LangChain derives from them are in [0, 1]
    rel = s.similarity_search_with_relevance_scores("a query", k=3)
    assert all(0.0 <= r <= 1.0 for _, r in rel)


def test_search_spans_segments_and_filters(tmp_path):
    s = VectroVectorStore(tmp_path / "kb", EMB, fsync=False)
    for part in range(4):  # four segments
        s.add_texts(
            [f"doc {part}-{i}" for i in range(25)],
            metadatas=[{"part": part, "i": i} for i in range(25)],
        )
    top = s.similarity_search("doc 2-13", k=1)
    assert top[0].page_content == "doc 2-13" and top[0].metadata == {"part": 2, "i": 13}
    only3 = s.similarity_search("doc 2-13", k=30, filter={"part": 3})
    assert len(only3) == 25 and {d.metadata["part"] for d in only3} == {3}
    odd = s.similarity_search("doc 2-13", k=100, filter=lambda m: m["i"] % 2 == 1)
    assert len(odd) == 48
    assert s.similarity_search("doc 2-13", k=5, filter={"part": 9}) == []
    mmr = s.max_marginal_relevance_search("doc 1-1", k=3, fetch_k=10)
    assert len(mmr) == 3 and mmr[0].page_content == "doc 1-1"


def test_compact_keeps_the_live_documents(tmp_path):
    p = tmp_path / "kb"
    s = VectroVectorStore(p, EMB, fsync=False)
    ids = s.add_texts(_texts(30))
    s.add_texts(_texts(5), ids=ids[:5])  # replaces five
    s.delete(ids[10:20])
    open(p / "seg-999999-deadbeef.vectro", "wb").close()  # an orphan a crash could leave
    want = sorted((d.id, d.page_content) for d in s.get_by_ids(ids))
    report = s.compact()
    assert report["rows"] == 20 and report["segments_before"] == 2
    assert not (p / "seg-999999-deadbeef.vectro").exists()
    assert len([f for f in os.listdir(p) if f.endswith(".vectro")]) == 1
    r = VectroVectorStore(p, EMB)
    assert sorted((d.id, d.page_content) for d in r.get_by_ids(ids)) == want
    assert r.similarity_search("text number 25", k=1)[0].page_content == "text number 25"


def test_a_failed_add_leaves_the_committed_store(tmp_path, monkeypatch):
    p = tmp_path / "kb"
    s = VectroVectorStore(p, EMB, fsync=False)
    s.add_texts(_texts(10), ids=[str(i) for i in range(10)])
    manifest = (p / "MANIFEST.json").read_bytes()
    # A metadata value JSON cannot hold: refused before anything is committed.
    with pytest.raises(ValueError, match="JSON"):
        s.add_texts(["x"], metadatas=[{"bad": object()}])
    # A crash between the segment's files and the manifest's rename.
    import vectro._store as st

    def boom(path, data):
        if path.endswith("MANIFEST.json"):
            raise OSError("disk full")
        return real(path, data)

    real = st._write_atomic
    monkeypatch.setattr(st, "_write_atomic", boom)
    with pytest.raises(OSError):
        s.add_texts(["new"], ids=["3"])
    monkeypatch.undo()
    assert (p / "MANIFEST.json").read_bytes() == manifest
    assert s.get_by_ids(["3"])[0].page_content == "text number 3"
    r = VectroVectorStore(p, EMB)
    assert len(r) == 10 and r.get_by_ids(["3"])[0].page_content == "text number 3"
    assert json.loads(manifest)["segments"][0]["rows"] == 10


def test_two_writers_on_one_directory_lose_nothing(tmp_path):
    # Two store objects (as two processes would have): each write takes the directory's
    # lock and first reloads what the other committed.
    p = tmp_path / "kb"
    a = VectroVectorStore(p, EMB, fsync=False)
    b = VectroVectorStore(p, EMB, fsync=False)
    a.add_texts(["from a"], ids=["a1"])
    b.add_texts(["from b"], ids=["b1"])
    a.add_texts(["from a again"], ids=["a2"])
    b.delete(["a1"])
    for s in (a, b, VectroVectorStore(p, EMB)):
        assert sorted(d.id for d in s.similarity_search("from", k=10)) == ["a2", "b1"]


def test_l2_and_ip_metrics(tmp_path):
    texts = _texts(40)
    for metric in ("l2", "ip"):
        s = VectroVectorStore(tmp_path / metric, EMB, metric=metric, fsync=False)
        s.add_texts(texts)
        hits = s.similarity_search_with_score("text number 9", k=3)
        assert hits[0][0].page_content == "text number 9"
        scores = [sc for _, sc in hits]
        assert scores == sorted(scores, reverse=(metric == "ip"))
        rel = s.similarity_search_with_relevance_scores("text number 9", k=3)
        assert rel[0][1] == max(r for _, r in rel)
