import numpy as np
import pytest

from chatbot.rag.embedding import Embedder, ModelUnavailable, get_embedder
from chatbot.rag.fusion import fuse_dense_and_lexical, hybrid_search, reciprocal_rank_fusion
from chatbot.rag.index import ExactIndex
from chatbot.rag.lexical import BM25Index, BM25Scorer, term_frequencies, tokenize

from .conftest import CORPUS

# --- embeddings ---------------------------------------------------------------------------------------------------


def test_embeddings_are_unit_length_float32_of_dimension_384(embedder):
    vectors = embedder.encode(["Type 2 diabetes", "How do I upload a CSV?"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32 and embedder.dimension == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_get_embedder_loads_once_per_process(embedder):
    assert get_embedder() is embedder


def test_a_missing_model_path_names_the_setting(tmp_path):
    with pytest.raises(ModelUnavailable, match="EMBEDDING_MODEL_PATH"):
        Embedder(tmp_path / "nowhere")


def test_a_broken_model_folder_names_the_setting(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="EMBEDDING_MODEL_PATH"):
        Embedder(tmp_path)


def test_dense_search_finds_the_semantically_closest_chunk(embedder, corpus_vectors):
    index = ExactIndex.from_arrays(*corpus_vectors)
    query = embedder.encode(["raised blood pressure in the arteries"])[0]
    top_ids = [identifier for identifier, _ in index.search(query, 2)]
    assert set(top_ids) == {"icd10cm:I10#0", "hpo:HP:0000822#0"}
    upload = embedder.encode(["how can I send my spreadsheet to the platform"])[0]
    assert index.search(upload, 1)[0][0] == "guide:uploading-data#0"


# --- exact index --------------------------------------------------------------------------------------------------


def test_exact_index_returns_cosine_scores_best_first():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    index = ExactIndex.from_arrays([f"id{n}" for n in range(50)], vectors)
    query = rng.normal(size=8).astype(np.float32)
    expected = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    results = index.search(query, 5)
    assert [identifier for identifier, _ in results] == [f"id{n}" for n in np.argsort(-expected)[:5]]
    assert np.allclose([score for _, score in results], np.sort(expected)[::-1][:5], atol=1e-5)
    for batch_results in index.search_batch(np.stack([query, query]), 5):
        assert [identifier for identifier, _ in batch_results] == [identifier for identifier, _ in results]
        assert [score for _, score in batch_results] == pytest.approx([score for _, score in results], abs=1e-6)


def test_exact_index_breaks_ties_by_id_whatever_the_insertion_order():
    same = np.tile(np.array([1.0, 0.0], dtype=np.float32), (4, 1))
    forward = ExactIndex.from_arrays(["d", "b", "c", "a"], same)
    backward = ExactIndex.from_arrays(["a", "c", "b", "d"], same)
    assert [i for i, _ in forward.search(np.array([1.0, 0.0]), 2)] == ["a", "b"]
    assert forward.search(np.array([1.0, 0.0]), 4) == backward.search(np.array([1.0, 0.0]), 4)


def test_exact_index_replaces_and_removes_ids():
    index = ExactIndex.from_arrays(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    index.add(["a"], np.array([[0.0, 1.0]]))
    assert len(index) == 2
    assert index.scores_for(np.array([0.0, 1.0]), ["a", "b", "missing"]) == {"a": 1.0, "b": 1.0}
    index.remove(["b"])
    assert index.ids == ["a"] and index.search(np.array([1.0, 0.0]), 5) == [("a", 0.0)]
    with pytest.raises(ValueError, match="dimension"):
        index.add(["c"], np.zeros((1, 3)))


# --- lexical ------------------------------------------------------------------------------------------------------


def test_tokenize_keeps_codes_searchable_and_drops_stopwords():
    assert tokenize("What does ICD-10 code E11 cover?") == ["icd", "10", "e11"]  # question scaffolding goes
    assert tokenize("E11.9 and HP:0000822") == ["e11.9", "e11", "hp:0000822", "0000822"]
    assert tokenize("Trained models, uploading files") == ["train", "model", "upload", "file"]


def test_term_frequencies_count_terms_and_length():
    assert term_frequencies("diabetes diabetes insulin") == ({"diabete": 2, "insulin": 1}, 3)


def test_bm25_matches_a_hand_computed_example():
    # d1 = "apple banana apple" (3 terms), d2 = "banana cherry" (2), d3 = "cherry date egg fig" (4); avg length 3.
    postings = {"apple": [("d1", 2)], "banana": [("d1", 1), ("d2", 1)], "cherry": [("d2", 1), ("d3", 1)]}
    lengths = {"d1": 3, "d2": 2, "d3": 4}
    scorer = BM25Scorer(k1=1.5, b=0.75)
    # apple: idf = ln(1 + 2.5/1.5) = 0.980829; tf part = 2*2.5 / (2 + 1.5) = 1.428571 → 1.401185
    [(doc, apple)] = scorer.score(["apple"], postings, lengths, n_docs=3, avg_len=3.0)
    assert doc == "d1" and apple == pytest.approx(1.401185, abs=1e-5)
    # banana: idf = ln(1.6) = 0.470004; d2 is shorter than average (norm 1.125) so it wins: 0.552945 vs 0.470004.
    banana = scorer.score(["banana", "banana"], postings, lengths, n_docs=3, avg_len=3.0)
    assert [doc for doc, _ in banana] == ["d2", "d1"]
    assert [score for _, score in banana] == pytest.approx([0.552945, 0.470004], abs=1e-5)
    both = dict(scorer.score(["apple", "banana", "unknown"], postings, lengths, n_docs=3, avg_len=3.0))
    assert both["d1"] == pytest.approx(1.401185 + 0.470004, abs=1e-5)


def test_bm25_index_finds_a_chunk_by_its_code():
    index = BM25Index.from_texts(list(CORPUS), list(CORPUS.values()))
    assert index.search("What does ICD-10 code E11 cover?", 1)[0][0] == "icd10cm:E11#0"
    assert index.search("HP:0001250", 1)[0][0] == "hpo:HP:0001250#0"
    assert index.search("zebra", 5) == []


# --- fusion -------------------------------------------------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [identifier for identifier, _ in reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])] == [
        "b",
        "c",
        "a",
        "d",
    ]


def test_rrf_weights_favour_one_ranking():
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=0, weights=[3.0, 1.0])
    assert fused[0][0] == "a" and fused[0][1] == pytest.approx(3 / 1 + 1 / 2)


def test_fusion_refuses_everything_below_the_relevance_floor():
    dense, lexical = [("a", 0.21), ("b", 0.1)], [("c", 7.0)]
    result = fuse_dense_and_lexical(dense, lexical, k=5, relevance_floor=0.3)
    assert result.hits == [] and result.below_floor and result.best_dense_score == 0.21
    kept = fuse_dense_and_lexical(dense, lexical, k=5, relevance_floor=0.2)
    assert not kept.below_floor
    assert {hit.id for hit in kept.hits} == {"a", "b", "c"}
    lexical_only = next(hit for hit in kept.hits if hit.id == "c")
    assert lexical_only.dense_score is None and lexical_only.lexical_score == 7.0 and lexical_only.lexical_rank == 1


def test_hybrid_search_finds_what_either_method_finds(embedder, corpus_vectors):
    dense_index = ExactIndex.from_arrays(*corpus_vectors)
    lexical_index = BM25Index.from_texts(list(CORPUS), list(CORPUS.values()))
    question = "What does ICD-10 code E11 cover?"
    result = hybrid_search(
        embedder.encode([question])[0],
        question,
        dense_search=dense_index.search,
        lexical_search=lexical_index.search,
        k=3,
    )
    assert "icd10cm:E11#0" in [hit.id for hit in result.hits]
    assert len(result.hits) == 3 and result.best_dense_score is not None


def test_title_field_ranks_the_term_itself_above_terms_that_mention_it():
    from chatbot.rag.chunking import chunk_text

    chunks = [
        *chunk_text(
            "Scoliosis, compensatory scoliosis of the spine: a scoliosis that balances another scoliosis.",
            title="HPO HP:0100884: Compensatory scoliosis", source="HPO", doc_key="hpo:HP:0100884",
        ),
        *chunk_text(
            "The presence of an abnormal lateral curvature of the spine.",
            title="HPO HP:0002650: Scoliosis", source="HPO", doc_key="hpo:HP:0002650",
        ),
    ]  # fmt: skip
    assert chunks[1].title_text == "HPO HP:0002650: Scoliosis"
    body = BM25Index.from_chunks(chunks)
    titles = BM25Index.from_chunks(chunks, field="title_text")
    assert body.search("What is scoliosis?", 1)[0][0] == "hpo:HP:0100884#0"
    assert titles.search("What is scoliosis?", 1)[0][0] == "hpo:HP:0002650#0"
    fused = fuse_dense_and_lexical(
        [("hpo:HP:0100884#0", 0.7), ("hpo:HP:0002650#0", 0.69)],
        body.search("What is scoliosis?", 5),
        title=titles.search("What is scoliosis?", 5),
        k=2,
    )
    assert fused.hits[0].id == "hpo:HP:0002650#0"
