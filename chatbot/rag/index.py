"""Exact nearest-neighbour search with NumPy: the vector store wherever pgvector is not available, and the reference
the HNSW index is measured against. Cosine similarity on L2-normalised vectors is a dot product."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["ExactIndex", "normalise_rows", "top_k"]


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32 rows of unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def top_k(ids: Sequence[Hashable], scores: np.ndarray, k: int) -> list[tuple[Hashable, float]]:
    """The k best (id, score) pairs, highest score first; equal scores are ordered by id, so results never depend
    on insertion order or on how argpartition happens to break ties."""
    if k <= 0 or len(scores) == 0:
        return []
    k = min(k, len(scores))
    threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
    # Every candidate tied with the k-th score, so the tie-break by id sees all of them.
    candidates = np.flatnonzero(scores >= threshold)
    ranked = sorted(candidates.tolist(), key=lambda position: (-float(scores[position]), ids[position]))
    return [(ids[position], float(scores[position])) for position in ranked[:k]]


class ExactIndex:
    """Brute-force cosine search over normalised vectors held in one contiguous float32 matrix."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.ids: list[Hashable] = []
        self.vectors = np.zeros((0, dimension), dtype=np.float32)
        self._positions: dict[Hashable, int] = {}

    @classmethod
    def from_arrays(cls, ids: Sequence[Hashable], vectors: np.ndarray) -> ExactIndex:
        vectors = np.asarray(vectors, dtype=np.float32)
        index = cls(vectors.shape[1] if vectors.ndim == 2 else len(vectors))
        index.add(ids, vectors)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: Sequence[Hashable], vectors: np.ndarray) -> None:
        """Add vectors under ids; an id already present is replaced (re-ingesting a chunk)."""
        vectors = normalise_rows(vectors)
        ids = list(ids)
        if vectors.shape != (len(ids), self.dimension):
            raise ValueError(f"expected {len(ids)} vectors of dimension {self.dimension}, got shape {vectors.shape}")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be unique")
        replaced = [identifier for identifier in ids if identifier in self._positions]
        if replaced:
            self.remove(replaced)
        self.vectors = np.ascontiguousarray(np.concatenate([self.vectors, vectors]))
        for identifier in ids:
            self._positions[identifier] = len(self.ids)
            self.ids.append(identifier)

    def remove(self, ids: Sequence[Hashable]) -> None:
        doomed = {self._positions[identifier] for identifier in ids if identifier in self._positions}
        if not doomed:
            return
        keep = [position for position in range(len(self.ids)) if position not in doomed]
        self.vectors = np.ascontiguousarray(self.vectors[keep])
        self.ids = [self.ids[position] for position in keep]
        self._positions = {identifier: position for position, identifier in enumerate(self.ids)}

    def search(self, query_vec: np.ndarray, k: int) -> list[tuple[Hashable, float]]:
        """The k nearest ids by cosine similarity, best first, ties broken by id."""
        query = normalise_rows(query_vec)[0]
        if query.shape[0] != self.dimension:
            raise ValueError(f"query has dimension {query.shape[0]}, the index {self.dimension}")
        return top_k(self.ids, self.vectors @ query, k)

    def search_batch(self, query_vecs: np.ndarray, k: int) -> list[list[tuple[Hashable, float]]]:
        """``search`` for each row of ``query_vecs``, with one matrix product for all of them."""
        scores = normalise_rows(query_vecs) @ self.vectors.T
        return [top_k(self.ids, row, k) for row in scores]

    def scores_for(self, query_vec: np.ndarray, ids: Sequence[Hashable]) -> dict[Hashable, float]:
        """Cosine of the query with the given ids (those in the index), e.g. to apply the relevance floor to
        candidates that only the lexical search found."""
        query = normalise_rows(query_vec)[0]
        return {
            identifier: float(self.vectors[self._positions[identifier]] @ query)
            for identifier in ids
            if identifier in self._positions
        }
