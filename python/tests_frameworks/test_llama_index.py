"""The LlamaIndex store: the behaviours langchain-tests checks of a LangChain store
(empty, add then search in order, delete, idempotent and mutating re-adds, get by id,
missing ids), restated for LlamaIndex's interface, plus doc ids, metadata filters,
persistence across reopen and a VectorStoreIndex on top."""

import asyncio
import hashlib

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import Document, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from vectro.llama_index import VectroVectorStore

DIMS = 6  # as langchain-tests: tiny embeddings must work


def embed(text, dims=DIMS):
    """A deterministic embedding seeded by the text (as langchain's fake one)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dims).tolist()


class HashEmbedding(BaseEmbedding):
    dims: int = DIMS

    def _get_query_embedding(self, query):
        return embed(query, self.dims)

    def _get_text_embedding(self, text):
        return embed(text, self.dims)

    async def _aget_query_embedding(self, query):
        return embed(query, self.dims)


def node(text, id_, ref=None, **metadata):
    n = TextNode(text=text, id_=id_, metadata=metadata, embedding=embed(text))
    if ref is not None:
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref)
    return n


def search(store, text, k):
    r = store.query(VectorStoreQuery(query_embedding=embed(text), similarity_top_k=k))
    return [(n.node_id, n.get_content(), n.metadata) for n in r.nodes]


@pytest.fixture(params=[{}, {"codec": "binary:rotate=1", "rescore_codec": "int8"}], ids=["int8", "tiered"])
def store(tmp_path, request):
    s = VectroVectorStore(tmp_path / "store", fsync=False, **request.param)
    yield s
    s.clear()


def test_empty(store):
    assert search(store, "foo", 1) == []
    assert len(store) == 0


def test_add_then_search_in_order(store):
    nodes = [node("foo", "a", id=1), node("bar", "b", id=2)]
    assert store.add(nodes) == ["a", "b"]
    assert search(store, "bar", 2) == [("b", "bar", {"id": 2}), ("a", "foo", {"id": 1})]
    r = store.query(VectorStoreQuery(query_embedding=embed("bar"), similarity_top_k=2))
    assert r.ids == ["b", "a"] and r.similarities[0] == pytest.approx(1.0, abs=1e-2)
    assert r.similarities[0] >= r.similarities[1]
    assert nodes[0].metadata == {"id": 1}  # the input is not changed


def test_delete_nodes_and_missing(store):
    store.add([node("foo", "1", id=1), node("bar", "2", id=2), node("baz", "3", id=3)])
    store.delete_nodes(["1", "2"])
    assert search(store, "foo", 1) == [("3", "baz", {"id": 3})]
    store.delete_nodes(["1", "nope"])  # missing ids are no error
    assert len(store) == 1


def test_delete_by_ref_doc_id(store):
    store.add([node("foo", "1", ref="doc-a"), node("bar", "2", ref="doc-b"), node("baz", "3", ref="doc-a")])
    store.delete("doc-a")
    assert [i for i, _, _ in search(store, "foo", 5)] == ["2"]
    store.delete("doc-zzz")
    assert len(store) == 1


def test_add_same_ids_is_idempotent(store):
    nodes = [node("foo", "1", id=1), node("bar", "2", id=2)]
    store.add(nodes)
    store.add(nodes)
    assert search(store, "bar", 5) == [("2", "bar", {"id": 2}), ("1", "foo", {"id": 1})]


def test_add_by_id_with_mutation(store):
    store.add([node("foo", "1", id=1), node("bar", "2", id=2)])
    store.add([node("new foo", "1", id=1, some_other_field="foo")])
    assert search(store, "new foo", 2) == [
        ("1", "new foo", {"id": 1, "some_other_field": "foo"}),
        ("2", "bar", {"id": 2}),
    ]


def test_get_nodes(store):
    store.add([node("foo", "1", id=1), node("bar", "2", id=2)])
    got = store.get_nodes(["2", "1", "x"])
    assert [(n.node_id, n.get_content(), n.metadata) for n in got] == [
        ("2", "bar", {"id": 2}),
        ("1", "foo", {"id": 1}),
    ]
    assert store.get_nodes(["x", "y"]) == []
    f = MetadataFilters(filters=[MetadataFilter(key="id", value=2)])
    assert [n.node_id for n in store.get_nodes(filters=f)] == ["2"]


def test_filters_and_doc_ids(store):
    store.add([node(f"t{i}", f"n{i}", ref=f"d{i % 3}", i=i, kind="odd" if i % 2 else "even") for i in range(30)])
    q = lambda **kw: store.query(
        VectorStoreQuery(query_embedding=embed("t4"), similarity_top_k=100, **kw)
    ).ids
    assert q()[0] == "n4" and len(q()) == 30
    assert sorted(q(doc_ids=["d1"])) == sorted(f"n{i}" for i in range(30) if i % 3 == 1)
    assert sorted(q(node_ids=["n1", "n2", "zz"])) == ["n1", "n2"]
    f = MetadataFilters(filters=[MetadataFilter(key="kind", value="odd"), MetadataFilter(key="i", value=10, operator=FilterOperator.LT)])
    assert sorted(q(filters=f)) == sorted(f"n{i}" for i in (1, 3, 5, 7, 9))
    f = MetadataFilters(
        filters=[MetadataFilter(key="i", value=[0, 29], operator=FilterOperator.IN), MetadataFilter(key="i", value=15)],
        condition=FilterCondition.OR,
    )
    assert sorted(q(filters=f)) == ["n0", "n15", "n29"]
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="kind", value="even")]))
    assert len(store) == 15 and q()[0] != "n4"


def test_persist_and_reopen(tmp_path):
    p = tmp_path / "kb"
    s = VectroVectorStore(p)
    s.add([node(f"text {i}", f"id{i}", ref=f"doc{i // 10}", i=i) for i in range(40)])
    s.add([node("late", "late", ref="doc9")])
    s.delete("doc1")
    before = s.query(VectorStoreQuery(query_embedding=embed("text 7"), similarity_top_k=5))
    s.persist(str(tmp_path / "ignored.json"))
    r = VectroVectorStore(p)
    assert len(r) == 31
    after = r.query(VectorStoreQuery(query_embedding=embed("text 7"), similarity_top_k=5))
    assert after.ids == before.ids and after.ids[0] == "id7"
    assert after.similarities == before.similarities
    assert r.get_nodes(["id12"]) == []
    assert r.get_nodes(["late"])[0].ref_doc_id == "doc9"
    assert r.compact()["rows"] == 31
    assert VectroVectorStore(p).query(VectorStoreQuery(query_embedding=embed("text 7"), similarity_top_k=5)).ids == before.ids


def test_async(store):
    async def go():
        await store.async_add([node("foo", "1"), node("bar", "2")])
        r = await store.aquery(VectorStoreQuery(query_embedding=embed("foo"), similarity_top_k=1))
        await store.adelete_nodes(["2"])
        return r.ids, len(store)

    assert asyncio.run(go()) == (["1"], 1)


def test_vector_store_index(tmp_path):
    emb = HashEmbedding()
    store = VectroVectorStore(tmp_path / "kb")
    ctx = StorageContext.from_defaults(vector_store=store)
    docs = [
        Document(text=f"document number {i}", id_=f"doc-{i}", metadata={"n": i}, excluded_embed_metadata_keys=["n"])
        for i in range(12)
    ]
    index = VectorStoreIndex.from_documents(docs, storage_context=ctx, embed_model=emb)
    hits = index.as_retriever(similarity_top_k=3).retrieve("document number 5")
    assert hits[0].node.get_content() == "document number 5" and hits[0].node.metadata == {"n": 5}
    assert hits[0].node.ref_doc_id == "doc-5"
    index.delete_ref_doc("doc-5")
    hits = index.as_retriever(similarity_top_k=3).retrieve("document number 5")
    assert "document number 5" not in [h.node.get_content() for h in hits]
    # reopened from disk alone
    again = VectorStoreIndex.from_vector_store(VectroVectorStore(tmp_path / "kb"), embed_model=emb)
    assert len(again.as_retriever(similarity_top_k=20).retrieve("document")) == 11


def test_delete_nodes_needs_a_selection(store):
    store.add([node("foo", "1"), node("bar", "2")])
    store.delete_nodes([])
    with pytest.raises(ValueError, match="clear"):
        store.delete_nodes()
    assert len(store) == 2
