"""A LlamaIndex vector store on disk, compressed by Vectro, under a VectorStoreIndex.

    pip install "vectro[llama-index]"
    python examples/python/llama_index_store.py [STORE_DIR]

The embedding model is a small hash-seeded one defined here, so that the example runs
offline; use any LlamaIndex embedding model instead.
"""

import hashlib
import sys
import tempfile

import numpy as np
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding

from vectro.llama_index import VectroVectorStore


class HashEmbedding(BaseEmbedding):
    def _vec(self, text):
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(64).tolist()

    def _get_query_embedding(self, query):
        return self._vec(query)

    def _get_text_embedding(self, text):
        return self._vec(text)

    async def _aget_query_embedding(self, query):
        return self._vec(query)


path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="kb-") + "/store"
emb = HashEmbedding()
docs = [
    Document(text=t, id_=f"doc-{i}", metadata={"n": i}, excluded_embed_metadata_keys=["n"])
    for i, t in enumerate(["Vectro compresses embeddings", "LlamaIndex retrieves", "Rust is fast"])
]
store = VectroVectorStore(path)
index = VectorStoreIndex.from_documents(
    docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=emb
)
for hit in index.as_retriever(similarity_top_k=2).retrieve("Rust is fast"):
    print(f"{hit.score:.3f}  {hit.node.ref_doc_id}  {hit.node.get_content()!r}")

index.delete_ref_doc("doc-1")  # deletes that document's nodes from the store

# Reopened from the directory alone:
again = VectorStoreIndex.from_vector_store(VectroVectorStore(path), embed_model=emb)
hits = again.as_retriever(similarity_top_k=5).retrieve("Rust is fast")
assert [h.node.ref_doc_id for h in hits][0] == "doc-2" and len(hits) == 2
print(f"{len(hits)} nodes in {path}")
