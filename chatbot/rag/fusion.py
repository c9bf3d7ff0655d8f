"""Hybrid retrieval: dense (cosine) and lexical (BM25) rankings fused with reciprocal rank fusion, and the relevance
floor that lets the bot say it found nothing instead of guessing.

Three rankings are fused: dense cosine over ``Chunk.search_text`` embeddings, BM25 over ``Chunk.search_text``, and
BM25 over the title field ``Chunk.title_text`` (title and heading only). The title ranking is optional, but it is what
lets hybrid beat both single methods on the evaluation set: for "What is scoliosis?" body BM25 and dense search both
prefer the many child terms that mention scoliosis, while the title field ranks the term "Scoliosis" itself first.

The relevance floor applies to the **best dense cosine similarity** of the query against the knowledge base. BM25
scores are unbounded and depend on the collection, and RRF scores only encode ranks, so neither can say "nothing
here is about this question"; the cosine of normalised MiniLM embeddings is on a fixed scale. When the best cosine
is below the floor, ``hybrid_search`` returns no hits and ``HybridResult.below_floor`` is true. Lexical hits are
kept when the query as a whole passes the floor, even if their own cosine is low: an exact code match ("E11") is
often what dense search misses.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEFAULT_DENSE_WEIGHT",
    "DEFAULT_LEXICAL_WEIGHT",
    "DEFAULT_RRF_K",
    "DEFAULT_TITLE_WEIGHT",
    "Hit",
    "HybridResult",
    "fuse_dense_and_lexical",
    "hybrid_search",
    "reciprocal_rank_fusion",
]

# Tuned on chatbot/rag/eval/questions.json (python -m chatbot.rag.eval.evaluate --tune), and confirmed by tuning on
# half of the questions and measuring on the other half (both halves pick these). A small k lets a first place in one
# ranking count for much more than a tenth place: on this set the customary k=60 loses to every k from 2 to 20, and a
# doubled title weight lets an exact name match ("Scoliosis") outrank chunks that only mention it.
DEFAULT_RRF_K = 2
DEFAULT_DENSE_WEIGHT = 1.0
DEFAULT_LEXICAL_WEIGHT = 1.0
DEFAULT_TITLE_WEIGHT = 2.0
# How deep each ranking is read before fusing: deeper lists let an item ranked well by one method and modestly by
# the other rise, at the cost of a longer BM25 sort.
DEFAULT_CANDIDATES = 50


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hashable]], k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[Hashable, float]]:
    """Fused (id, score) best first: score(id) = Σ_i weight_i / (k + rank_i(id)), ranks starting at 1 (Cormack et
    al., 2009). An id missing from a ranking gets nothing from it. Ties are broken by id."""
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("give one weight per ranking")
    if k < 0:
        raise ValueError("k must not be negative")
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, identifier in enumerate(ranking, start=1):
            scores[identifier] = scores.get(identifier, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class Hit:
    id: Hashable
    score: float  # the fused RRF score: only its order means something
    dense_score: float | None  # cosine similarity, when the dense search returned this id
    lexical_score: float | None  # BM25, when the lexical search returned this id
    dense_rank: int | None = None
    lexical_rank: int | None = None


@dataclass
class HybridResult:
    hits: list[Hit]
    best_dense_score: float | None  # what the relevance floor was compared with
    relevance_floor: float | None
    below_floor: bool = False
    dense: list[tuple[Hashable, float]] = field(default_factory=list, repr=False)
    lexical: list[tuple[Hashable, float]] = field(default_factory=list, repr=False)


def fuse_dense_and_lexical(
    dense: Sequence[tuple[Hashable, float]],
    lexical: Sequence[tuple[Hashable, float]],
    *,
    k: int,
    rrf_k: int = DEFAULT_RRF_K,
    dense_weight: float = DEFAULT_DENSE_WEIGHT,
    lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
    relevance_floor: float | None = None,
    title: Sequence[tuple[Hashable, float]] | None = None,
    title_weight: float = DEFAULT_TITLE_WEIGHT,
) -> HybridResult:
    """Fuse two (or, with ``title``, three) already-computed rankings ((id, score) best first) into the top ``k`` hits.

    For callers that run the two searches themselves (pgvector + postings in the database). With a
    ``relevance_floor``, nothing is returned when the best dense cosine is below it (or there is no dense result).
    """
    best_dense = max((score for _, score in dense), default=None)
    if relevance_floor is not None and (best_dense is None or best_dense < relevance_floor):
        return HybridResult([], best_dense, relevance_floor, below_floor=True, dense=list(dense), lexical=list(lexical))
    dense_scores = {identifier: (rank, score) for rank, (identifier, score) in enumerate(dense, start=1)}
    lexical_scores = {identifier: (rank, score) for rank, (identifier, score) in enumerate(lexical, start=1)}
    rankings = [[identifier for identifier, _ in dense], [identifier for identifier, _ in lexical]]
    weights = [dense_weight, lexical_weight]
    if title:
        rankings.append([identifier for identifier, _ in title])
        weights.append(title_weight)
    fused = reciprocal_rank_fusion(rankings, k=rrf_k, weights=weights)
    hits = []
    for identifier, score in fused[:k]:
        dense_rank, dense_score = dense_scores.get(identifier, (None, None))
        lexical_rank, lexical_score = lexical_scores.get(identifier, (None, None))
        hits.append(Hit(identifier, score, dense_score, lexical_score, dense_rank, lexical_rank))
    return HybridResult(hits, best_dense, relevance_floor, dense=list(dense), lexical=list(lexical))


def hybrid_search(
    query_vec: np.ndarray,
    query_text: str,
    *,
    dense_search: Callable[[np.ndarray, int], list[tuple[Hashable, float]]],
    lexical_search: Callable[[str, int], list[tuple[Hashable, float]]],
    k: int = 5,
    candidates: int = DEFAULT_CANDIDATES,
    rrf_k: int = DEFAULT_RRF_K,
    dense_weight: float = DEFAULT_DENSE_WEIGHT,
    lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
    relevance_floor: float | None = None,
    title_search: Callable[[str, int], list[tuple[Hashable, float]]] | None = None,
    title_weight: float = DEFAULT_TITLE_WEIGHT,
) -> HybridResult:
    """Dense, lexical and (optionally) title-field search ``candidates`` deep each, fused to the top ``k``.

    ``dense_search(vector, n)``, ``lexical_search(text, n)`` and ``title_search(text, n)`` are e.g.
    ``ExactIndex.search``, ``BM25Index.search`` and a title-field ``BM25Index.search``, or the app's pgvector and
    database-postings searches.
    """
    depth = max(k, candidates)
    return fuse_dense_and_lexical(
        dense_search(query_vec, depth),
        lexical_search(query_text, depth),
        title=title_search(query_text, depth) if title_search else None,
        title_weight=title_weight,
        k=k,
        rrf_k=rrf_k,
        dense_weight=dense_weight,
        lexical_weight=lexical_weight,
        relevance_floor=relevance_floor,
    )
