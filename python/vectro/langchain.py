"""A LangChain vector store kept as Vectro containers on disk.

>>> from vectro.langchain import VectroVectorStore                  # doctest: +SKIP
>>> store = VectroVectorStore("kb.store", embedding=embeddings)     # doctest: +SKIP
>>> store.add_texts(["a text", "another"], metadatas=[{"src": 1}, {"src": 2}])  # doctest: +SKIP
>>> store.similarity_search_with_score("a query", k=2)              # doctest: +SKIP

Needs ``langchain-core``: ``pip install vectro[langchain]``. See docs/vector-stores.md.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError as e:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "vectro.langchain needs langchain-core, which is not installed: "
        "pip install vectro[langchain]"
    ) from e

from ._store import Store

__all__ = ["VectroVectorStore"]

Filter = Union[Dict[str, Any], Callable[[Dict[str, Any]], bool], None]


def _where(filter: Filter) -> Optional[Callable[[Dict[str, Any]], bool]]:
    """A record predicate from ``filter``: a dict of metadata values that must be equal
    (a list value means "one of"), or a callable given the metadata dict."""
    if filter is None:
        return None
    if callable(filter):
        f = filter
        return lambda rec: bool(f(rec["metadata"]))
    if not isinstance(filter, dict):
        raise TypeError("filter must be a dict of metadata values or a callable(metadata) -> bool")
    items = list(filter.items())

    def match(rec: Dict[str, Any]) -> bool:
        md = rec["metadata"]
        for key, want in items:
            if key not in md:
                return False
            if isinstance(want, (list, tuple, set)):
                if md[key] not in want:
                    return False
            elif md[key] != want:
                return False
        return True

    return match


def _doc(rec: Dict[str, Any]) -> Document:
    return Document(page_content=rec["text"], metadata=rec["metadata"], id=rec["id"])


class VectroVectorStore(VectorStore):
    """A LangChain ``VectorStore`` whose vectors are Vectro containers in a directory.

    Args:
        path: the store's directory; created if missing, reopened if it holds a store.
        embedding: the LangChain ``Embeddings`` that turns texts and queries into vectors.
        codec: the codec the vectors are stored and searched in (default ``int8``; any
            ``vectro.compress`` codec, e.g. ``"binary:rotate=1"`` with ``rescore_codec``).
        rescore_codec: a finer copy of each segment (e.g. ``"int8"``) that re-ranks the
            best ``rescore`` candidates of the coarse search.
        rescore: candidates re-ranked per query with ``rescore_codec``.
        metric: ``"cos"`` (default; scores are cosine similarities), ``"ip"`` or ``"l2"``
            (scores are squared distances, smaller is closer).
        fsync: sync every file before it is renamed into place (default True).

    Every ``add_texts`` writes one new segment and commits it atomically; ``delete``
    records tombstones; :meth:`compact` rewrites the live rows into one segment.
    """

    def __init__(
        self,
        path: "str | os.PathLike[str]",
        embedding: Embeddings,
        *,
        codec: Optional[str] = None,
        rescore_codec: Optional[str] = None,
        rescore: int = 100,
        metric: Optional[str] = None,
        fsync: bool = True,
    ) -> None:
        self._embedding = embedding
        self.store = Store(
            path, codec=codec, rescore_codec=rescore_codec, rescore=rescore, metric=metric, fsync=fsync
        )

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def path(self) -> str:
        return self.store.root

    def __bool__(self) -> bool:
        # An empty store is still a store: frameworks test `if vector_store:`.
        return True

    def __len__(self) -> int:
        return len(self.store)

    # --- writes ----------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        """Embed ``texts`` and add them as one new segment; an id already in the store is
        replaced. Returns the ids (new uuid4 strings where none was given)."""
        texts = list(texts)
        if not texts:
            return []
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        vectors = self._embedding.embed_documents(texts)
        records = [
            {
                "id": None if ids is None else ids[i],
                "text": t,
                "metadata": {} if metadatas is None else (metadatas[i] or {}),
            }
            for i, t in enumerate(texts)
        ]
        return self.store.add(vectors, records)

    def add_embeddings(
        self,
        texts: Sequence[str],
        embeddings: Any,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[Optional[str]]] = None,
    ) -> List[str]:
        """Add texts with vectors computed elsewhere (an array of ``(len(texts), dims)``)."""
        records = [
            {
                "id": None if ids is None else ids[i],
                "text": t,
                "metadata": {} if metadatas is None else (metadatas[i] or {}),
            }
            for i, t in enumerate(texts)
        ]
        return self.store.add(embeddings, records)

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Delete the documents of ``ids`` (unknown ids are ignored); ``ids=None`` deletes
        every document."""
        if ids is None:
            self.store.clear()
        else:
            self.store.delete(ids)
        return True

    def compact(self) -> Dict[str, int]:
        """Rewrite the live documents into one segment and remove unreferenced files."""
        return self.store.compact()

    # --- reads -----------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        return [_doc(r) for r in self.store.get(ids)]

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """The ``k`` nearest documents with their scores (see ``metric``)."""
        if self.store.dims is None:
            return []
        vec = self._embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vec, k, filter=filter, **kwargs)

    def similarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Document]:
        return [
            d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter)
        ]

    def similarity_search_with_score_by_vector(
        self, embedding: List[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        return [(_doc(r), s) for r, s in self.store.search(embedding, k, where=_where(filter))]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> List[Document]:
        if self.store.dims is None:
            return []
        vec = self._embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vec, k, fetch_k, lambda_mult, filter=filter
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> List[Document]:
        import numpy as np
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        hits = self.store.search(embedding, fetch_k, where=_where(filter))
        if not hits:
            return []
        vectors = self.store.get_vectors([r["id"] for r, _ in hits])
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32), list(vectors), lambda_mult=lambda_mult, k=k
        )
        return [_doc(hits[i][0]) for i in chosen]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Scores mapped into [0, 1], monotonically, whatever the vectors' norms:
        ``(1 + cos) / 2``; ``1 / (1 + exp(-ip))``; ``1 / (1 + squared l2)``."""
        if self.store.metric == "l2":
            return lambda s: 1.0 / (1.0 + max(s, 0.0))
        if self.store.metric == "ip":
            return lambda s: 1.0 / (1.0 + math.exp(-max(min(s, 700.0), -700.0)))
        return lambda s: (1.0 + s) / 2.0

    @classmethod
    def from_texts(
        cls: Type["VectroVectorStore"],
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        path: "str | os.PathLike[str] | None" = None,
        **kwargs: Any,
    ) -> "VectroVectorStore":
        """A store at ``path`` (default: a new temporary directory) holding ``texts``."""
        if path is None:
            path = tempfile.mkdtemp(prefix="vectro-store-")
        store = cls(path, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
