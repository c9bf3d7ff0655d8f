"""Lexical retrieval: a tokenizer that keeps medical codes searchable, and Okapi BM25.

``BM25Scorer`` only does arithmetic on term statistics the caller supplies (postings, document lengths, counts), so
the Django app can keep its postings in database tables and fetch just the query's terms, instead of rebuilding an
index on every query. ``BM25Index`` keeps the same statistics in memory, for tests, the evaluation and benchmarks.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence

__all__ = ["STOPWORDS", "BM25Index", "BM25Scorer", "term_frequencies", "tokenize"]

# Function words and question scaffolding: they match almost every chunk and only add noise to BM25. "code" and
# "cover" belong here too: "What does code E11 cover?" must match E11, not the titles of "Activity codes" (Y93).
STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be because been before being below between both but
    by can could did do does doing down during each few for from further had has have having he her here hers him his
    how i if in into is it its itself just me more most my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them then there these they this those through
    to too under until up very was we were what when where which while who whom why will with would you your yours
    yourself please tell explain mean means meaning
    code codes cover covers covered describe describes define definition
    """.split()
)

# Codes first, so that "HP:0000822", "E11.9" and "O24.4-" stay single tokens; then plain words.
_TOKEN = re.compile(r"[a-z]{2,8}:\d{3,}|[a-z]\d{2}(?:\.[0-9a-z]{1,4})?(?![0-9a-z])|\w+")
_ICD_SUBCODE = re.compile(r"([a-z]\d{2})\.[0-9a-z]+")


def _strip_suffix(word: str) -> str:
    """A deliberately tiny stemmer: plural and -ing/-ed forms meet their base form (models/model, trained/train)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercased search terms: codes kept whole (an ICD subcode also yields its category: e11.9 → e11.9, e11),
    stopwords dropped, light suffix stripping."""
    text = unicodedata.normalize("NFKC", text).lower()
    terms: list[str] = []
    for token in _TOKEN.findall(text):
        if token in STOPWORDS or not token.strip("_"):
            continue
        subcode = _ICD_SUBCODE.fullmatch(token)
        if subcode:
            terms.extend((token, subcode.group(1)))
        elif ":" in token:
            # hp:0000822 is searchable as written and by its number alone.
            terms.extend((token, token.split(":", 1)[1]))
        else:
            stem = _strip_suffix(token)
            if stem not in STOPWORDS:
                terms.append(stem)
    return terms


def term_frequencies(text: str) -> tuple[dict[str, int], int]:
    """(term → count, document length in terms): what a posting table stores for one chunk."""
    terms = tokenize(text)
    return dict(Counter(terms)), len(terms)


class BM25Scorer:
    """Okapi BM25 with the non-negative idf of Lucene: idf = ln(1 + (N - df + 0.5) / (df + 0.5))."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    def idf(self, document_frequency: int, n_docs: int) -> float:
        return math.log(1.0 + (n_docs - document_frequency + 0.5) / (document_frequency + 0.5))

    def score(
        self,
        query_terms: Iterable[str],
        postings: Mapping[str, Sequence[tuple[Hashable, int]]],
        doc_lengths: Mapping[Hashable, int],
        n_docs: int,
        avg_len: float,
        limit: int | None = None,
    ) -> list[tuple[Hashable, float]]:
        """Documents matching at least one query term, best first (ties by id). ``postings[term]`` lists every
        (doc_id, term frequency) of the term in the collection: its length is the document frequency. A repeated
        query term counts once."""
        scores: dict[Hashable, float] = defaultdict(float)
        avg_len = avg_len or 1.0
        for term in dict.fromkeys(query_terms):
            term_postings = postings.get(term)
            if not term_postings:
                continue
            idf = self.idf(len(term_postings), n_docs)
            for doc_id, frequency in term_postings:
                norm = self.k1 * (1.0 - self.b + self.b * doc_lengths[doc_id] / avg_len)
                scores[doc_id] += idf * frequency * (self.k1 + 1.0) / (frequency + norm)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:limit] if limit is not None else ranked


class BM25Index:
    """In-memory postings for BM25 over (id, text) pairs."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.scorer = BM25Scorer(k1=k1, b=b)
        self.postings: dict[str, list[tuple[Hashable, int]]] = defaultdict(list)
        self.doc_lengths: dict[Hashable, int] = {}
        self.total_length = 0

    @classmethod
    def from_texts(cls, ids: Sequence[Hashable], texts: Sequence[str], k1: float = 1.5, b: float = 0.75) -> BM25Index:
        index = cls(k1=k1, b=b)
        for identifier, text in zip(ids, texts, strict=True):
            index.add(identifier, text)
        return index

    @classmethod
    def from_chunks(cls, chunks: Sequence, k1: float = 1.5, b: float = 0.75, field: str = "search_text") -> BM25Index:
        """Index chunks by key, over their ``search_text`` (title and heading included) or, with
        ``field="title_text"``, over their title and heading alone (the title field of hybrid search)."""
        if field not in {"search_text", "title_text"}:
            raise ValueError("field must be search_text or title_text")
        return cls.from_texts([chunk.key for chunk in chunks], [getattr(chunk, field) for chunk in chunks], k1=k1, b=b)

    def add(self, identifier: Hashable, text: str) -> None:
        if identifier in self.doc_lengths:
            raise ValueError(f"{identifier!r} is already indexed")
        frequencies, length = term_frequencies(text)
        self.doc_lengths[identifier] = length
        self.total_length += length
        for term, frequency in frequencies.items():
            self.postings[term].append((identifier, frequency))

    def __len__(self) -> int:
        return len(self.doc_lengths)

    @property
    def avg_len(self) -> float:
        return self.total_length / len(self.doc_lengths) if self.doc_lengths else 0.0

    def search(self, query: str, k: int) -> list[tuple[Hashable, float]]:
        return self.scorer.score(
            tokenize(query), self.postings, self.doc_lengths, len(self.doc_lengths), self.avg_len, limit=k
        )
