"""A LlamaIndex vector store kept as Vectro containers on disk.

>>> from llama_index.core import StorageContext, VectorStoreIndex   # doctest: +SKIP
>>> from vectro.llama_index import VectroVectorStore                # doctest: +SKIP
>>> store = VectroVectorStore("kb.store")                           # doctest: +SKIP
>>> index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store))  # doctest: +SKIP

Needs ``llama-index-core``: ``pip install vectro[llama-index]``. See docs/vector-stores.md.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import (
        build_metadata_filter_fn,
        metadata_dict_to_node,
        node_to_metadata_dict,
    )
except ImportError as e:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "vectro.llama_index needs llama-index-core, which is not installed: "
        "pip install vectro[llama-index]"
    ) from e

from ._store import Store

__all__ = ["VectroVectorStore"]


class VectroVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store whose vectors are Vectro containers in a directory.

    The same engine as ``vectro.langchain.VectroVectorStore`` (one segment a call to
    :meth:`add`, tombstones for deletes, atomic commits), holding each node's text and its
    serialized metadata. Arguments as there: ``path``, ``codec`` (default ``int8``),
    ``rescore_codec``, ``rescore``, ``metric`` (``cos``, ``ip``, ``l2``), ``fsync``.

    Queries take ``similarity_top_k``, ``doc_ids`` (ref doc ids), ``node_ids`` and
    ``filters`` (``MetadataFilters``, every operator of LlamaIndex's own simple store,
    conditions ``and``/``or``/``not``); only the default (dense) query mode.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    codec: Optional[str] = None
    rescore_codec: Optional[str] = None
    metric: Optional[str] = None

    _store: Store = PrivateAttr()

    def __init__(
        self,
        path: "str | os.PathLike[str]",
        *,
        codec: Optional[str] = None,
        rescore_codec: Optional[str] = None,
        rescore: int = 100,
        metric: Optional[str] = None,
        fsync: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(path=os.fspath(path), **kwargs)
        self._store = Store(
            path, codec=codec, rescore_codec=rescore_codec, rescore=rescore, metric=metric, fsync=fsync
        )
        self.codec = self._store.codec
        self.rescore_codec = self._store.rescore_codec
        self.metric = self._store.metric

    @classmethod
    def class_name(cls) -> str:
        return "VectroVectorStore"

    @property
    def client(self) -> Store:
        """The on-disk engine (``vectro._store.Store``)."""
        return self._store

    def __bool__(self) -> bool:
        # An empty store is still a store: frameworks test `if vector_store:`.
        return True

    def __len__(self) -> int:
        return len(self._store)

    # --- writes ----------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Add nodes (with their embeddings) as one new segment; a node id already in the
        store is replaced. Returns the node ids."""
        if not nodes:
            return []
        vectors, records = [], []
        for n in nodes:
            emb = n.get_embedding()  # raises if the node has none
            vectors.append(emb)
            records.append(
                {
                    "id": n.node_id,
                    "text": n.get_content(metadata_mode=MetadataMode.NONE),
                    "metadata": node_to_metadata_dict(
                        n, remove_text=True, flat_metadata=self.flat_metadata
                    ),
                }
            )
        return self._store.add(vectors, records)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id``."""
        self._store.delete_where(lambda r: r["metadata"].get("ref_doc_id") == ref_doc_id)

    def delete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes in ``node_ids`` that match ``filters`` (either may be None)."""
        if node_ids is None and filters is None:
            raise ValueError("delete_nodes needs node_ids or filters; clear() deletes every node")
        if node_ids is not None and not node_ids:
            return
        where = self._where(node_ids=node_ids, filters=filters)
        self._store.delete_where(where or (lambda r: True))

    def clear(self) -> None:
        self._store.clear()

    def compact(self) -> Dict[str, int]:
        """Rewrite the live nodes into one segment and remove unreferenced files."""
        return self._store.compact()

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Nothing to do: every add and delete is committed to ``path`` when it returns.
        Reopen with ``VectroVectorStore(path)``."""
        return None

    # --- reads -----------------------------------------------------------------------

    def get_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        if node_ids is not None:
            recs = self._store.get(node_ids)
            if filters is not None:
                where = self._where(filters=filters)
                recs = [r for r in recs if where(r)]
        else:
            where = self._where(filters=filters)
            recs = [r for r in self._store.records() if where is None or where(r)]
        return [self._node(r) for r in recs]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise NotImplementedError(
                f"VectroVectorStore answers dense queries only, not mode {query.mode.value!r}"
            )
        if query.query_embedding is None:
            raise ValueError("VectorStoreQuery.query_embedding is required")
        where = self._where(doc_ids=query.doc_ids, node_ids=query.node_ids, filters=query.filters)
        hits = self._store.search(query.query_embedding, query.similarity_top_k, where=where)
        return VectorStoreQueryResult(
            nodes=[self._node(r) for r, _ in hits],
            similarities=[s for _, s in hits],
            ids=[r["id"] for r, _ in hits],
        )

    # --- helpers ---------------------------------------------------------------------

    @staticmethod
    def _node(rec: Dict[str, Any]) -> BaseNode:
        return metadata_dict_to_node(rec["metadata"], text=rec["text"])

    @staticmethod
    def _where(
        doc_ids: Optional[List[str]] = None,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
    ) -> Any:
        # An empty list is no restriction: LlamaIndex's retrievers pass node_ids=[] for an
        # index whose nodes live in the store, as its other stores read it.
        if not doc_ids and not node_ids and (filters is None or not filters.filters):
            return None
        docs = set(doc_ids) if doc_ids else None
        ids = set(node_ids) if node_ids else None
        current: List[Dict[str, Any]] = [{}]
        match = build_metadata_filter_fn(lambda _id: current[0], filters)

        def where(rec: Dict[str, Any]) -> bool:
            if ids is not None and rec["id"] not in ids:
                return False
            if docs is not None and rec["metadata"].get("ref_doc_id") not in docs:
                return False
            current[0] = rec["metadata"]
            return match(rec["id"])

        return where
