"""Loaders from a Vectro container into vector databases: one module per engine.

- :mod:`vectro.integrations.milvus` (``pip install vectro[milvus]``): a Milvus collection.
- :mod:`vectro.integrations.qdrant` (``pip install vectro[qdrant]``): a Qdrant Edge shard
  in-process, or a Qdrant server through ``qdrant_client.QdrantClient(url=...)``.
- :mod:`vectro.integrations.lancedb` (``pip install vectro[lancedb]``): a LanceDB table.

Each ``load(container, ...)`` streams the container window by window (one chunk's rows
in memory at a time, never the whole file), carries the container's ids (or the rows'
numbers when it has none) and an optional payload aligned row by row, resumes after a
failure without duplicating a point, and reports progress as the rest of the package
does (``progress=True`` for a line on stderr, or ``f(done_rows, total_rows)``).

Importing this package imports no engine; each module imports its client when used and
raises ImportError naming the extra to install when it is missing. See
docs/integrations.md.
"""
