"""Documents of one's own: a user attaches a PDF, Markdown or text file to a conversation; it is masked, indexed and
cited beside the shared knowledge base in that conversation only, and no one else ever sees it or its passages.

Runs on both vector backends: the NumPy index on SQLite, pgvector in the PostgreSQL pass of scripts/test_matrix.sh.
"""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from chatbot import services
from chatbot.models import KnowledgeChunk, KnowledgeDocument
from chatbot.vectorstore import NumpyStore, PgVectorStore, get_vector_store, pgvector_available

from .conftest import jwt_client
from .test_api import ask, start

PROTOCOL = """# Ward 7 quokka telemetry protocol

The quokka telemetry protocol of ward 7 checks the zebrafish monitor every hour and logs the readings.

Patient name: Jane Doe, phone 020 7946 0000, seen on 12/03/2024 (MRN: 4455667788).
"""
QUESTION = "What does the ward 7 quokka telemetry protocol check?"


def attach(client, conversation_id, data: bytes, name: str = "ward7-protocol.md", content_type="text/markdown"):
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post("/chat/documents", {"conversation_id": conversation_id, "file": upload}, format="multipart")


@pytest.fixture
def alice_attached(kb, alice_api, django_capture_on_commit_callbacks):
    conversation_id = start(alice_api)
    with django_capture_on_commit_callbacks(execute=True):
        response = attach(alice_api, conversation_id, PROTOCOL.encode())
    assert response.status_code == 202, response.content
    document = KnowledgeDocument.objects.get(pk=response.json()["id"])
    assert document.status == "ready" and document.n_chunks > 0
    return conversation_id, document


def cited_ids(answer: dict) -> set[int]:
    return {source["document_id"] for source in answer["sources"]}


def every_id(answer: dict) -> set[int]:
    return cited_ids(answer) | {source["document_id"] for source in answer["see_also"]}


def test_attached_document_is_masked_indexed_and_cited_beside_the_shared_base(alice_attached, alice_api):
    conversation_id, document = alice_attached
    passages = KnowledgeChunk.objects.filter(document=document).values_list("text", flat=True)
    stored = document.content + " ".join(passages)
    for personal in ("Jane Doe", "020 7946 0000", "12/03/2024", "4455667788"):
        assert personal not in stored
    assert "Patient name: [name]" in document.content
    listed = alice_api.get(f"/chat/documents?conversation_id={conversation_id}").json()["documents"]
    assert [(item["id"], item["title"], item["status"]) for item in listed] == [
        (document.pk, "ward7-protocol.md", "ready")
    ]

    answer = ask(alice_api, conversation_id, QUESTION).json()
    assert answer["sources"][0]["document_id"] == document.pk, answer
    assert "zebrafish monitor every hour" in answer["answer"]
    # The shared knowledge base answers beside it in the same conversation.
    shared = ask(alice_api, conversation_id, "What does ICD-10 code E11 cover?").json()
    assert shared["sources"][0]["code"] == "ICD-10-CM E11"
    assert document.pk not in cited_ids(shared)


def test_charlie_never_sees_alices_document_or_its_passages(alice_attached, charlie_api, charlie, chat_embedder):
    alice_conversation, document = alice_attached
    chunk_ids = set(KnowledgeChunk.objects.filter(document=document).values_list("id", flat=True))

    answer = ask(charlie_api, start(charlie_api), QUESTION).json()
    assert document.pk not in every_id(answer)
    assert "zebrafish" not in answer["answer"]

    assert charlie_api.get(f"/chat/documents?conversation_id={alice_conversation}").status_code == 404
    assert charlie_api.delete(f"/chat/documents/{document.pk}").status_code == 404
    assert KnowledgeDocument.objects.filter(pk=document.pk).exists()

    # Nor through the service with alice's conversation, nor in either retriever, on this database's vector store.
    from chatbot.models import Conversation

    passages = services.knowledge_search(
        user=charlie, query=QUESTION, conversation=Conversation.objects.get(pk=alice_conversation)
    )
    assert document.pk not in {passage.document_id for passage in passages}
    assert chunk_ids.isdisjoint(chunk for chunk, _ in services.lexical_search(query=QUESTION, group_ids=[], limit=50))
    vector = np.asarray(chat_embedder.encode([QUESTION])[0], dtype=np.float32)
    store = get_vector_store()
    assert chunk_ids.isdisjoint(chunk for chunk, _ in store.search(vector, k=100, group_ids=None))
    assert chunk_ids.isdisjoint(chunk for chunk, _ in store.search(vector, k=100, group_ids=[]))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pgvector runs on PostgreSQL only")
def test_pgvector_leaves_attached_documents_out_exact_and_approximate(alice_attached, chat_embedder):
    assert pgvector_available(connection.alias), "the PostgreSQL pass must have the vector extension"
    assert isinstance(get_vector_store(), PgVectorStore)
    _, document = alice_attached
    chunk_ids = set(KnowledgeChunk.objects.filter(document=document).values_list("id", flat=True))
    vector = np.asarray(chat_embedder.encode([QUESTION])[0], dtype=np.float32)
    for exact in (True, False):
        hits = PgVectorStore().search(vector, k=100, group_ids=[], exact=exact)
        assert hits and chunk_ids.isdisjoint(chunk for chunk, _ in hits)
    assert chunk_ids.isdisjoint(chunk for chunk, _ in NumpyStore().search(vector, k=100))


def test_staff_curate_only_the_shared_base(alice_attached, bob, second_factor_token):
    _, document = alice_attached
    staff = jwt_client(bob)
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {second_factor_token(bob)}")
    listed = staff.get("/api/v1/knowledge/documents/")
    assert listed.status_code == 200
    assert document.pk not in {item["id"] for item in listed.json()}
    assert staff.get(f"/api/v1/knowledge/documents/{document.pk}/").status_code == 404


def test_another_conversation_of_alice_does_not_use_it(alice_attached, alice_api):
    _, document = alice_attached
    answer = ask(alice_api, start(alice_api), QUESTION).json()
    assert document.pk not in every_id(answer)


def test_removing_the_document_or_the_account_removes_its_passages(alice_attached, alice_api, alice):
    conversation_id, document = alice_attached
    assert alice_api.delete(f"/chat/documents/{document.pk}").status_code == 204
    assert not KnowledgeChunk.objects.filter(document_id=document.pk).exists()

    services_document = services.conversation_document_attach(
        user=alice,
        conversation=alice.conversations.get(pk=conversation_id),
        data=PROTOCOL.encode(),
        filename="again.txt",
    )
    alice.delete()
    assert not KnowledgeDocument.objects.filter(pk=services_document.pk).exists()


def blank_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_a_scan_without_text_is_refused_clearly(kb, alice_api):
    response = attach(alice_api, start(alice_api), blank_pdf(), name="scan.pdf", content_type="application/pdf")
    assert response.status_code == 400
    assert response.json()["code"] == "no_text"
    assert "scan" in response.json()["detail"]
    assert not KnowledgeDocument.objects.filter(owner_id__isnull=False).exists()


def test_too_large_or_other_files_are_refused(kb, alice_api, settings):
    settings.CHAT_ATTACHMENT_MAX_MB = 1
    conversation_id = start(alice_api)
    too_large = attach(alice_api, conversation_id, b"word " * 300_000, name="long.txt", content_type="text/plain")
    assert too_large.status_code == 400 and "larger than 1 MB" in too_large.json()["detail"]
    page = attach(alice_api, conversation_id, b"<html><body>Hi</body></html>", name="a.html", content_type="text/html")
    assert page.status_code == 400 and page.json()["code"] == "unsupported_file"
    binary = attach(alice_api, conversation_id, b"\x89PNG\r\n\x1a\n\x00\x00", name="x.png", content_type="image/png")
    assert binary.status_code == 400 and binary.json()["code"] == "unsupported_file"
    assert not KnowledgeDocument.objects.filter(owner_id__isnull=False).exists()


def test_charlie_cannot_attach_to_alices_conversation(kb, alice_api, charlie_api):
    conversation_id = start(alice_api)
    assert attach(charlie_api, conversation_id, PROTOCOL.encode()).status_code == 404
    assert not KnowledgeDocument.objects.filter(owner_id__isnull=False).exists()
