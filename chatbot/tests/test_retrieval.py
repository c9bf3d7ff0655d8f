"""Ingestion, retrieval and the vector stores on a small fixed knowledge base with the real embedder."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import QuerySet

from chatbot import services
from chatbot.models import KnowledgeChunk, KnowledgeDocument, LexicalPosting
from chatbot.vectorstore import NumpyStore, PgVectorStore, get_vector_store, pgvector_available


def test_loading_the_corpus_indexes_every_document_with_chunks_and_postings(kb):
    assert KnowledgeDocument.objects.filter(status="ready").count() == len(kb)
    assert KnowledgeChunk.objects.count() >= len(kb)
    e11 = KnowledgeDocument.objects.get(key="icd10cm:E11")
    assert e11.code == "ICD-10-CM E11"
    assert e11.n_chunks == e11.chunks.count() > 0
    assert LexicalPosting.objects.filter(term="e11", chunk__document=e11).exists()


def test_loading_again_skips_unchanged_documents(kb, chat_embedder):
    before = set(KnowledgeChunk.objects.values_list("id", flat=True))
    report = services.knowledge_base_load(sources=kb, embedder=chat_embedder)
    assert (report.created, report.updated, report.unchanged) == (0, 0, len(kb))
    assert set(KnowledgeChunk.objects.values_list("id", flat=True)) == before


def test_icd_question_finds_the_icd_category_first(kb, alice):
    passages = services.knowledge_search(user=alice, query="What does ICD-10 code E11 cover?")
    assert passages[0].code == "ICD-10-CM E11"
    assert 0 < passages[0].score <= 1


def test_training_question_finds_the_guide_section_on_training(kb, alice):
    passages = services.knowledge_search(user=alice, query="How do I train a model on my CSV?")
    assert "guide:training" in [p.code for p in passages[:3]]


def test_unrelated_question_is_below_the_relevance_floor(kb, alice):
    assert services.knowledge_search(user=alice, query="Best pizza recipe with mozzarella and basil") == []


def test_group_restricted_document_is_invisible_to_outsiders(kb, alice, charlie, django_capture_on_commit_callbacks):
    cardiology = Group.objects.create(name="Cardiology")
    alice.groups.add(cardiology)
    with django_capture_on_commit_callbacks(execute=True):
        document = services.knowledge_document_create(
            user=alice,
            title="Ward 7 protocol for zebrafish telemetry",
            content="The ward 7 zebrafish telemetry protocol checks the quokka monitor every hour.",
            fmt="text",
            group=cardiology,
        )
    document.refresh_from_db()
    assert document.status == "ready"  # eager Celery ran the ingestion task
    question = "What does the ward 7 zebrafish telemetry protocol check?"
    assert services.knowledge_search(user=alice, query=question)[0].document_id == document.pk
    assert document.pk not in [p.document_id for p in services.knowledge_search(user=charlie, query=question)]
    assert document.pk not in [hit for hit, _ in services.lexical_search(query=question, group_ids=[], limit=50)]


def test_reingesting_a_changed_document_replaces_its_chunks(kb, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        document = services.knowledge_document_create(
            user=alice, title="Note", content="Quokka handling rules apply on ward nine.", fmt="text"
        )
    old_keys = set(KnowledgeChunk.objects.filter(document=document).values_list("text", flat=True))
    assert old_keys
    with django_capture_on_commit_callbacks(execute=True):
        services.knowledge_document_update_content(
            document=document, content="Wombat handling rules apply on ward ten.", fmt="text"
        )
    texts = set(KnowledgeChunk.objects.filter(document=document).values_list("text", flat=True))
    assert texts and texts.isdisjoint(old_keys)
    assert not LexicalPosting.objects.filter(chunk__document=document, term="quokka").exists()


def test_failed_reingest_keeps_the_old_chunks(kb, alice, monkeypatch, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        document = services.knowledge_document_create(
            user=alice, title="Note", content="Quokka handling rules apply on ward nine.", fmt="text"
        )
    old = list(KnowledgeChunk.objects.filter(document=document).values_list("id", "text"))
    assert old

    real_bulk_create = QuerySet.bulk_create

    def explode(self, objs, *args, **kwargs):
        if self.model is LexicalPosting:
            raise RuntimeError("disk full while writing postings")
        return real_bulk_create(self, objs, *args, **kwargs)

    # Fails after the old chunks were deleted and the new ones inserted, inside the same transaction.
    monkeypatch.setattr(QuerySet, "bulk_create", explode)
    with django_capture_on_commit_callbacks(execute=True):
        services.knowledge_document_update_content(document=document, content="Wombats only.", fmt="text")
    document.refresh_from_db()
    assert document.status == "failed"
    assert "disk full" in document.error
    assert list(KnowledgeChunk.objects.filter(document=document).values_list("id", "text")) == old


def test_deleting_a_document_removes_its_chunks_and_postings(kb):
    document = KnowledgeDocument.objects.get(key="icd10cm:E11")
    chunk_ids = list(document.chunks.values_list("id", flat=True))
    services.knowledge_document_delete(document=document)
    assert not KnowledgeChunk.objects.filter(id__in=chunk_ids).exists()
    assert not LexicalPosting.objects.filter(chunk_id__in=chunk_ids).exists()


def test_numpy_store_reloads_its_matrix_when_the_knowledge_base_changes(kb, chat_embedder):
    store = NumpyStore()
    query = chat_embedder.encode(["type 2 diabetes"])[0]
    first = store.search(query, k=3)
    KnowledgeDocument.objects.get(key="icd10cm:E11").delete()
    assert store.search(query, k=3)[0][0] != first[0][0]


QUERIES = [
    "What does ICD-10 code E11 cover?",
    "high blood pressure",
    "seizures",
    "How do I train a model?",
    "two-factor login backup codes",
    "asthma",
]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pgvector runs on PostgreSQL only")
def test_pgvector_and_numpy_give_the_same_top_results(kb, chat_embedder):
    assert pgvector_available(connection.alias), "the PostgreSQL pass must have the vector extension"
    assert isinstance(get_vector_store(), PgVectorStore)
    numpy_store, pg_store = NumpyStore(), PgVectorStore()
    for query in QUERIES:
        vector = chat_embedder.encode([query])[0]
        expected = [chunk_id for chunk_id, _ in numpy_store.search(vector, k=5)]
        assert [chunk_id for chunk_id, _ in pg_store.search(vector, k=5, exact=True)] == expected
        assert [chunk_id for chunk_id, _ in pg_store.search(vector, k=5)][:3] == expected[:3]
        scores = dict(numpy_store.search(vector, k=5))
        for chunk_id, similarity in pg_store.search(vector, k=5, exact=True):
            assert similarity == pytest.approx(scores[chunk_id], abs=1e-4)


def test_numpy_store_is_used_without_pgvector(kb):
    if connection.vendor != "postgresql":
        assert isinstance(get_vector_store(), NumpyStore)
    assert get_vector_store().count() == KnowledgeChunk.objects.count()
