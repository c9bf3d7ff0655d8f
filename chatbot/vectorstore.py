"""Dense search over chunk embeddings: one interface, two backends that return the same results.

- `PgVectorStore`: PostgreSQL with pgvector; cosine distance on the `embedding vector(384)` column, served by its
  HNSW index (or exactly, with index scans off, for checks).
- `NumpyStore`: every other database. The embeddings (`embedding_f32`) are loaded once into a matrix per process
  and kept until the knowledge base changes (a cheap signature query per search), so a query is one mat-vec.

Both take a normalised query vector and the groups the reader belongs to, and return (chunk id, cosine similarity)
pairs, best first. Documents without a group are visible to everyone; `group_ids=None` means no group restriction.
Both search the shared knowledge base only: a document a user attached to a conversation (it has an owner) is never
among their results, whoever asks; its chunks are compared with the question by id (`similarities`), for its owner
in that conversation only (services.knowledge_search).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Count, Max

from .models import EMBEDDING_DIMENSION, KnowledgeChunk, KnowledgeDocument


def knowledge_base_alias() -> str:
    """The database holding the knowledge base (`vectors` when VECTOR_DATABASE_URL is set, else `default`)."""
    return router.db_for_write(KnowledgeChunk)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form, '[0.1,0.2,...]': works with any PostgreSQL driver setup, no adapter registration."""
    return "[" + ",".join(f"{float(x):.8g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


class VectorStore(ABC):
    """Nearest chunks to a query embedding, restricted to what the reader may see."""

    name: str = ""

    def __init__(self, alias: str | None = None):
        self.alias = alias or knowledge_base_alias()

    @abstractmethod
    def search(
        self, query: np.ndarray, *, k: int, group_ids: Sequence[int] | None = None, exact: bool = False
    ) -> list[tuple[int, float]]:
        """Up to k (chunk id, cosine similarity) pairs, most similar first."""

    def store(self, chunk_ids: Sequence[int], vectors: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Called inside the ingestion transaction after the chunk rows exist; NumPy needs nothing more."""

    def similarities(self, query: np.ndarray, chunk_ids: Iterable[int]) -> dict[int, float]:
        """Cosine similarity of the query to given chunks (lexical hits that dense search did not return)."""
        ids = list(chunk_ids)
        if not ids:
            return {}
        rows = KnowledgeChunk.objects.using(self.alias).filter(id__in=ids).values_list("id", "embedding_f32")
        query = np.asarray(query, dtype=np.float32)
        return {chunk_id: float(np.frombuffer(bytes(raw), dtype="<f4") @ query) for chunk_id, raw in rows}

    def count(self) -> int:
        return KnowledgeChunk.objects.using(self.alias).count()


@dataclass
class _LoadedMatrix:
    signature: tuple
    chunk_ids: np.ndarray
    group_ids: np.ndarray  # -1 where the document has no group
    matrix: np.ndarray


class NumpyStore(VectorStore):
    """Exact cosine search over an in-process matrix (embeddings are normalised, so cosine is a dot product)."""

    name = "numpy"
    _cache: dict[str, _LoadedMatrix] = {}
    _lock = threading.Lock()

    def signature(self) -> tuple:
        # Any ingestion, deletion or regrouping changes one of these; cheaper than reloading on every query.
        chunks = (
            KnowledgeChunk.objects.using(self.alias)
            .filter(document__owner_id__isnull=True)
            .aggregate(n=Count("id"), top=Max("id"))
        )
        documents = (
            KnowledgeDocument.objects.using(self.alias)
            .filter(owner_id__isnull=True)
            .aggregate(n=Count("id"), changed=Max("updated_at"))
        )
        return (chunks["n"], chunks["top"], documents["n"], documents["changed"])

    def _loaded(self) -> _LoadedMatrix:
        signature = self.signature()
        loaded = self._cache.get(self.alias)
        if loaded is not None and loaded.signature == signature:
            return loaded
        with self._lock:
            loaded = self._cache.get(self.alias)
            if loaded is not None and loaded.signature == signature:
                return loaded
            rows = list(
                KnowledgeChunk.objects.using(self.alias)
                .filter(document__owner_id__isnull=True)
                .order_by("id")
                .values_list("id", "document__group_id", "embedding_f32")
            )
            if rows:
                chunk_ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
                group_ids = np.fromiter(
                    (-1 if row[1] is None else row[1] for row in rows), dtype=np.int64, count=len(rows)
                )
                matrix = np.frombuffer(b"".join(bytes(row[2]) for row in rows), dtype="<f4").reshape(
                    len(rows), EMBEDDING_DIMENSION
                )
            else:
                chunk_ids = np.empty(0, dtype=np.int64)
                group_ids = np.empty(0, dtype=np.int64)
                matrix = np.empty((0, EMBEDDING_DIMENSION), dtype=np.float32)
            loaded = _LoadedMatrix(signature, chunk_ids, group_ids, matrix)
            self._cache[self.alias] = loaded
            return loaded

    @classmethod
    def invalidate(cls) -> None:
        cls._cache.clear()

    def search(self, query, *, k, group_ids=None, exact=False):
        loaded = self._loaded()
        if loaded.matrix.shape[0] == 0:
            return []
        if group_ids is None:
            positions = np.arange(loaded.matrix.shape[0])
        else:
            allowed = np.asarray(list(group_ids), dtype=np.int64)
            positions = np.flatnonzero((loaded.group_ids == -1) | np.isin(loaded.group_ids, allowed))
        if positions.size == 0:
            return []
        scores = loaded.matrix[positions] @ np.asarray(query, dtype=np.float32)
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        # Ties broken by chunk id, as PostgreSQL's ORDER BY distance, id does.
        order = sorted(top, key=lambda i: (-float(scores[i]), int(loaded.chunk_ids[positions[i]])))
        return [(int(loaded.chunk_ids[positions[i]]), float(scores[i])) for i in order]


class PgVectorStore(VectorStore):
    """pgvector on PostgreSQL: HNSW (cosine) by default, exact when asked (index scans off)."""

    name = "pgvector"

    def store(self, chunk_ids, vectors):
        table = KnowledgeChunk._meta.db_table
        with connections[self.alias].cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET embedding = %s::vector WHERE id = %s",  # noqa: S608 - our table name
                [(vector_literal(vector), chunk_id) for chunk_id, vector in zip(chunk_ids, vectors, strict=True)],
            )

    def search(self, query, *, k, group_ids=None, exact=False):
        chunk_table = KnowledgeChunk._meta.db_table
        document_table = KnowledgeDocument._meta.db_table
        literal = vector_literal(query)
        where = "c.embedding IS NOT NULL AND d.owner_id IS NULL"
        params: list = [literal]
        if group_ids is not None:
            where += " AND (d.group_id IS NULL OR d.group_id = ANY(%s))"
            params.append(list(group_ids))
        params += [literal, k]
        sql = (
            f"SELECT c.id, 1 - (c.embedding <=> %s::vector) FROM {chunk_table} c "  # noqa: S608 - our table names
            f"JOIN {document_table} d ON d.id = c.document_id WHERE {where} "
            "ORDER BY c.embedding <=> %s::vector, c.id LIMIT %s"
        )
        with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
            if exact:
                cursor.execute("SET LOCAL enable_indexscan = off")
                cursor.execute("SET LOCAL enable_bitmapscan = off")
            else:
                # set_config(..., is_local=true) is SET LOCAL with a bound parameter: it lasts until this transaction
                # ends, so other queries on a pooled connection keep the server default. 400 instead of pgvector's
                # 40 keeps recall@10 vs exact at 0.975 on 100k chunks (0.927 at 100).
                cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(settings.CHAT_HNSW_EF_SEARCH)])
            try:
                cursor.execute(sql, params)
                return [(int(chunk_id), float(similarity)) for chunk_id, similarity in cursor.fetchall()]
            finally:
                if exact:
                    # SET LOCAL lasts until the outer transaction ends, which in a request or test may be later.
                    cursor.execute("SET LOCAL enable_indexscan = on")
                    cursor.execute("SET LOCAL enable_bitmapscan = on")

    def count(self) -> int:
        table = KnowledgeChunk._meta.db_table
        with connections[self.alias].cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table} WHERE embedding IS NOT NULL")  # noqa: S608
            return int(cursor.fetchone()[0])


_pgvector_ready: dict[str, bool] = {}


def pgvector_available(alias: str) -> bool:
    """True when the knowledge-base database is PostgreSQL and migration 0002 made the vector column."""
    if alias in _pgvector_ready:
        return _pgvector_ready[alias]
    connection = connections[alias]
    available = False
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = 'embedding'",
                [KnowledgeChunk._meta.db_table],
            )
            available = cursor.fetchone() is not None
    _pgvector_ready[alias] = available
    return available


def get_vector_store() -> VectorStore:
    """The store for the knowledge-base database, as CHAT_VECTOR_BACKEND asks (auto: pgvector when it can)."""
    alias = knowledge_base_alias()
    choice = settings.CHAT_VECTOR_BACKEND
    if choice == "numpy":
        return NumpyStore(alias)
    if pgvector_available(alias):
        return PgVectorStore(alias)
    if choice == "pgvector":
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "CHAT_VECTOR_BACKEND=pgvector needs PostgreSQL with the vector extension for the knowledge base "
            "(DATABASE_URL or VECTOR_DATABASE_URL); set it to auto or numpy otherwise."
        )
    return NumpyStore(alias)
