"""The three rankings of hybrid retrieval (dense, body BM25, title BM25), the generator defaults, and what a failed
bulk load leaves behind."""

from pathlib import Path

import pytest

from chatbot import generation, services
from chatbot.models import KnowledgeChunk, KnowledgeDocument, LexicalPosting
from chatbot.rag import fusion


def test_ingestion_stores_title_field_postings_for_each_chunk(kb):
    e11 = KnowledgeDocument.objects.get(key="icd10cm:E11")
    chunk = e11.chunks.first()
    title_terms = set(LexicalPosting.objects.filter(chunk=chunk, field="title").values_list("term", flat=True))
    assert "diabete" in title_terms  # "Type 2 diabetes mellitus", lightly stemmed
    assert chunk.n_title_terms == sum(
        LexicalPosting.objects.filter(chunk=chunk, field="title").values_list("tf", flat=True)
    )
    # Body words that are not in the title or heading stay out of the title field.
    body_only = set(LexicalPosting.objects.filter(chunk=chunk, field="body").values_list("term", flat=True))
    assert body_only - title_terms


def test_title_search_ranks_the_chunk_named_by_the_question_first(kb):
    hits = services.lexical_search(query="Seizure", group_ids=[], limit=10, field="title")
    assert hits
    first = KnowledgeChunk.objects.select_related("document").get(pk=hits[0][0])
    assert first.document.key == "hpo:HP:0001250"


def test_knowledge_search_fuses_dense_body_and_title_rankings_with_the_tuned_defaults(kb, alice, monkeypatch):
    calls = []
    real = fusion.fuse_dense_and_lexical

    def spy(dense, lexical, **kwargs):
        calls.append(kwargs)
        return real(dense, lexical, **kwargs)

    monkeypatch.setattr(fusion, "fuse_dense_and_lexical", spy)
    passages = services.knowledge_search(user=alice, query="What is a seizure?")
    assert passages
    (kwargs,) = calls
    assert kwargs["title"], "the title-field ranking must be part of the fusion"
    assert "rrf_k" not in kwargs and "title_weight" not in kwargs  # rag.fusion's tuned defaults (k=2, title 2.0)


def test_failed_embedding_during_bulk_load_marks_the_documents_failed(db, corpus_sources):
    class BrokenEmbedder:
        dimension = 384

        def encode(self, texts):
            raise RuntimeError("embedding model crashed")

    with pytest.raises(RuntimeError):
        services.knowledge_base_load(sources=corpus_sources[:3], embedder=BrokenEmbedder())
    documents = KnowledgeDocument.objects.filter(key__in=[source.key for source in corpus_sources[:3]])
    assert documents.count() == 3
    assert set(documents.values_list("status", flat=True)) == {"failed"}
    assert all("embedding model crashed" in error for error in documents.values_list("error", flat=True))
    assert not KnowledgeChunk.objects.exists()


def test_failed_documents_are_indexed_by_the_next_load(db, corpus_sources, chat_embedder):
    class BrokenEmbedder:
        dimension = 384

        def encode(self, texts):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        services.knowledge_base_load(sources=corpus_sources[:2], embedder=BrokenEmbedder())
    report = services.knowledge_base_load(sources=corpus_sources[:2], embedder=chat_embedder)
    assert report.updated == 2
    assert set(KnowledgeDocument.objects.values_list("status", flat=True)) == {"ready"}


def test_auto_generator_is_extractive_without_an_endpoint_even_when_a_local_model_exists(settings, monkeypatch):
    settings.CHAT_GENERATOR = "auto"
    settings.LLM_BASE_URL = ""
    monkeypatch.setattr(generation, "local_model_path", lambda: Path(__file__))
    assert generation.generator_backend_name("auto") == "extractive"
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    assert generation.generator_backend_name("auto") == "http"


def test_pgvector_search_sets_ef_search_locally_in_the_query_transaction(db, settings):
    """The HNSW search depth is set with set_config(..., is_local=true), i.e. SET LOCAL, right before the query,
    inside the same transaction. The SQL is intercepted, so this runs on every database of the matrix."""
    from django.db import connection

    from chatbot.vectorstore import PgVectorStore

    settings.CHAT_HNSW_EF_SEARCH = 400
    seen = []

    def intercept(execute, sql, params, many, context):
        seen.append((sql, params, connection.in_atomic_block))
        if "hnsw.ef_search" in sql:
            return None
        return execute("SELECT 7, 0.5", (), many, context)  # stands in for the pgvector query

    with connection.execute_wrapper(intercept):
        hits = PgVectorStore(connection.alias).search([0.0] * 384, k=3)
    assert hits == [(7, 0.5)]
    # Savepoint statements of the atomic block pass through the wrapper too: keep the two that matter, in order.
    (set_sql, set_params, in_transaction), (query_sql, _, _) = [
        item for item in seen if "hnsw.ef_search" in item[0] or "<=>" in item[0]
    ]
    assert "set_config('hnsw.ef_search'" in set_sql and "true" in set_sql
    assert set_params == ["400"] and in_transaction
    assert "<=>" in query_sql


def test_answer_about_a_named_code_quotes_and_lists_only_that_code(kb, alice):
    conversation = services.conversation_start(user=alice)
    answer = services.message_send(user=alice, conversation=conversation, text="What does ICD-10 code E11 cover?")
    assert answer.sources
    assert {source["code"] for source in answer.sources} == {"ICD-10-CM E11"}
    assert "[1]" in answer.text


def test_question_without_a_code_keeps_every_retrieved_passage(kb, alice):
    passages = services.knowledge_search(user=alice, query="How do I train a model on my CSV?")
    assert services.passages_for_named_codes("How do I train a model on my CSV?", passages) == passages
