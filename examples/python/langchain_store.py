"""A LangChain vector store on disk, compressed by Vectro: add, search, delete, reopen.

    pip install "vectro[langchain]"
    python examples/python/langchain_store.py [STORE_DIR]

The embeddings here are langchain-core's deterministic fake ones (hash-seeded, 64 dims),
so that the example runs offline; use any LangChain `Embeddings` instead.
"""

import sys
import tempfile

from langchain_core.embeddings import DeterministicFakeEmbedding

from vectro.langchain import VectroVectorStore

path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kb-") + "/store"
emb = DeterministicFakeEmbedding(size=64)

store = VectroVectorStore(path, emb)  # int8 codes; or codec="binary:rotate=1", rescore_codec="int8"
ids = store.add_texts(
    ["Vectro compresses embeddings", "LangChain chains calls", "Rust is fast"],
    metadatas=[{"topic": "vectro"}, {"topic": "langchain"}, {"topic": "rust"}],
    ids=["v", "l", "r"],
)
for doc, score in store.similarity_search_with_score("Rust is fast", k=2):
    print(f"{score:.3f}  {doc.id}  {doc.page_content!r}  {doc.metadata}")

store.delete(["l"])
print([d.id for d in store.similarity_search("LangChain chains calls", k=5, filter={"topic": "vectro"})])

reopened = VectroVectorStore(path, emb)  # everything above was committed to disk
assert len(reopened) == 2
assert reopened.similarity_search("Rust is fast", k=1)[0].id == "r"
print(f"{len(reopened)} documents in {path}")
