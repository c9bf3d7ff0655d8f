"""The per-process sentence vector cache behind the extractive generator: same answers, fewer encodes, bounded."""

import threading

import numpy as np
import pytest

from chatbot.rag.chunking import chunk_text
from chatbot.rag.embedding import SentenceVectorCache, sentence_cache
from chatbot.rag.generation import ExtractiveGenerator, RetrievedChunk
from chatbot.rag.sources import icd10cm_documents


class CountingEncoder:
    """The real embedder, recording every batch it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.dimension = inner.dimension
        self.batches: list[list[str]] = []

    def encode(self, texts):
        self.batches.append(list(texts))
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def passages():
    """Real retrieved-size passages: chunks of ICD-10-CM categories, several sentences each."""
    documents = {doc.code.split()[-1]: doc for doc in icd10cm_documents() if doc.code}
    chunks = []
    for code in ("E11", "E10", "I10", "J45", "A00", "K21"):
        document = documents[code]
        pieces = chunk_text(
            document.text,
            title=document.title,
            source=document.source,
            code=document.code,
            doc_key=document.key,
            max_chars=1200,
            overlap_chars=150,
            fmt=document.fmt,
        )
        for piece in pieces:
            chunks.append(
                RetrievedChunk(
                    key=piece.key,
                    text=piece.text,
                    title=document.title,
                    source="ICD-10-CM",
                    code=document.code,
                    score=0.5,
                )
            )
    assert len(chunks) >= 6
    return chunks


QUESTIONS = [
    "What does ICD-10 code E11 cover?",
    "Is juvenile diabetes type 1?",
    "What is essential hypertension?",
    "Which code is used for asthma?",
    "What is cholera due to Vibrio cholerae?",
    "How is reflux with esophagitis coded?",
]


def test_answers_are_the_same_with_and_without_the_cache_cold_and_warm(embedder, passages):
    uncached = ExtractiveGenerator(embedder=embedder, cache_sentences=False)
    cache = SentenceVectorCache(embedder)  # a fresh one, so that the first round is really cold
    cached = ExtractiveGenerator(embedder=cache, cache_sentences=False)
    for round_ in ("cold", "warm"):
        for question in QUESTIONS:
            # Five passages per answer, as CHAT_TOP_K retrieves, overlapping between questions like popular passages.
            start = QUESTIONS.index(question) % (len(passages) - 4)
            chunks = passages[start : start + 5]
            expected = uncached.generate(question, [], chunks)
            got = cached.generate(question, [], chunks)
            assert (got.text, got.citations) == (expected.text, expected.citations), (round_, question)
    assert cache.hits > cache.misses  # the warm round really came from the cache


def test_cached_vectors_are_the_embedders_own(embedder, passages):
    sentences = [passage.text for passage in passages[:4]]
    cache = SentenceVectorCache(embedder)
    cold = cache.encode(sentences)
    warm = cache.encode(list(reversed(sentences)))[::-1]
    direct = embedder.encode(sentences)
    assert cold.dtype == np.float32 and cold.shape == (4, embedder.dimension)
    np.testing.assert_allclose(cold, direct, atol=1e-5)
    np.testing.assert_array_equal(warm, cold)


def test_a_warm_message_encodes_only_the_new_sentences_in_one_batch(embedder, passages):
    counting = CountingEncoder(embedder)
    generator = ExtractiveGenerator(embedder=counting)
    generator.generate(QUESTIONS[0], [], passages[:3])
    assert len(counting.batches) == 1
    first_batch = counting.batches[0]
    assert first_batch[0] == QUESTIONS[0] and len(first_batch) > 3

    counting.batches.clear()
    generator.generate(QUESTIONS[1], [], passages[:3])
    assert counting.batches == [[QUESTIONS[1]]]  # every passage sentence was already known

    counting.batches.clear()
    generator.generate(QUESTIONS[2], [], passages[:4])
    (batch,) = counting.batches
    assert batch[0] == QUESTIONS[2]
    assert set(batch[1:]).isdisjoint(first_batch)  # only the fourth passage's sentences are new
    assert batch[1:] and all(sentence in passages[3].text for sentence in batch[1:])


def test_generators_on_one_embedder_share_one_cache():
    class Fixed:
        dimension = 2

        def encode(self, texts):
            return np.ones((len(texts), 2), dtype=np.float32)

    fixed, other = Fixed(), Fixed()
    assert sentence_cache(fixed) is sentence_cache(fixed)
    assert sentence_cache(fixed) is not sentence_cache(other)
    assert ExtractiveGenerator(embedder=fixed)._encoder is ExtractiveGenerator(embedder=fixed, max_sentences=5)._encoder


class Deterministic:
    """Vectors derived from the text alone, so any mix-up between texts shows."""

    dimension = 8

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        rows = [np.random.default_rng(sum(text.encode())).random(self.dimension) for text in texts]
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimension)


def test_cache_is_bounded_and_forgets_the_least_recently_used():
    inner = Deterministic()
    cache = SentenceVectorCache(inner, max_entries=3)
    cache.encode(["a", "b", "c"])
    cache.encode(["a"])  # "a" is now the most recently used, "b" the least
    cache.encode(["d"])
    assert len(cache) == 3
    calls = inner.calls
    cache.encode(["a", "c", "d"])
    assert inner.calls == calls  # all three still cached
    cache.encode(["b"])
    assert inner.calls == calls + 1  # "b" had been evicted
    assert len(cache) == 3
    with pytest.raises(ValueError):
        SentenceVectorCache(inner, max_entries=0)


def test_returned_arrays_do_not_alias_the_cache():
    cache = SentenceVectorCache(Deterministic())
    first = cache.encode(["x", "y"])
    expected = first.copy()
    first[:] = 0  # a caller normalising or scaling its copy in place
    np.testing.assert_array_equal(cache.encode(["x", "y"]), expected)
    assert cache.encode([]).shape == (0, 8)


def test_duplicate_texts_in_one_call_are_encoded_once():
    inner = Deterministic()
    seen = []
    original = inner.encode
    inner.encode = lambda texts: seen.append(list(texts)) or original(texts)
    vectors = SentenceVectorCache(inner).encode(["p", "q", "p"])
    assert seen == [["p", "q"]]
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_threads_sharing_a_cache_get_each_texts_own_vector():
    inner = Deterministic()
    cache = SentenceVectorCache(inner, max_entries=50)
    texts = [f"sentence number {i}" for i in range(80)]
    expected = inner.encode(texts)
    errors = []

    def work(offset):
        try:
            for step in range(40):
                window = [texts[(offset + step + k) % len(texts)] for k in range(7)]
                got = cache.encode(window)
                indices = [texts.index(text) for text in window]
                np.testing.assert_array_equal(got, expected[indices])
        except AssertionError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(offset * 11,)) for offset in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) <= 50
