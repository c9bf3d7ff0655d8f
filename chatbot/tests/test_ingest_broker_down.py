"""Knowledge-base ingestion the broker refuses: a 503 (or a form error, or a command error), and a failed document
that says what to do, never one left "queued" for the staff page to poll for ever."""

from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from kombu.exceptions import OperationalError

from chatbot import services
from chatbot.models import KnowledgeChunk, KnowledgeDocument
from chatbot.tasks import knowledge_base_load, knowledge_document_ingest
from deepmed.jobs import BrokerUnavailable
from tests import celery_harness

# transaction=True: the document commits inside the request, so its on-commit send fails there, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.fixture
def unreachable_broker():
    with celery_harness.unreachable_broker():
        yield


def test_when_redis_is_unreachable_adding_a_document_is_a_503_and_the_document_is_failed(bob_api, unreachable_broker):
    response = bob_api.post("/api/v1/knowledge/documents/", {"title": "Ward rules", "text": "Visitors leave by 8."})

    assert response.status_code == 503, response.content
    body = response.json()
    assert body["code"] == "service_unavailable" and "start it again" in body["detail"]
    assert response["Retry-After"]
    document = KnowledgeDocument.objects.get(title="Ward rules")
    assert document.status == KnowledgeDocument.Status.FAILED
    assert "job queue was unavailable" in document.error and "add it again" in document.error


def test_a_refused_document_is_listed_as_failed_and_the_page_stops_polling(client, bob, second_factor_login):
    second_factor_login(client, bob)
    with mock.patch.object(knowledge_document_ingest, "apply_async", side_effect=REFUSED):
        response = client.post(
            "/chat/knowledge",
            {"title": "Ward rules", "text": "Visitors leave by 8.", "format": "text", "source": "Ward 7"},
        )

    # The staff page shows the reason on its form instead of an error page.
    assert response.status_code == 200
    assert "job queue is temporarily unavailable" in response.content.decode()
    document = KnowledgeDocument.objects.get(title="Ward rules")
    assert document.status == KnowledgeDocument.Status.FAILED
    # Nothing queued or ingesting: the rows fragment no longer asks htmx to poll.
    assert not client.get("/chat/knowledge").context["busy"]


def test_a_refused_reingest_fails_the_document_and_keeps_its_old_chunks(bob):
    document = services.knowledge_document_create(
        user=bob, title="Note", content="Quokka handling rules apply on ward nine.", fmt="text"
    )  # eager in the tests: ingested before this returns
    document.refresh_from_db()
    assert document.status == KnowledgeDocument.Status.READY
    old = list(KnowledgeChunk.objects.filter(document=document).values_list("id", "text"))
    assert old

    with mock.patch.object(knowledge_document_ingest, "apply_async", side_effect=REFUSED):
        with pytest.raises(BrokerUnavailable):
            services.knowledge_document_update_content(document=document, content="Wombats only.", fmt="text")

    document.refresh_from_db()
    assert document.status == KnowledgeDocument.Status.FAILED and "job queue" in document.error
    assert list(KnowledgeChunk.objects.filter(document=document).values_list("id", "text")) == old


def test_load_knowledge_base_in_the_background_says_the_broker_is_unreachable(unreachable_broker):
    with mock.patch.object(knowledge_base_load, "apply_async", wraps=knowledge_base_load.apply_async) as sent:
        with pytest.raises(CommandError, match="CELERY_BROKER_URL"):
            call_command("load_knowledge_base", "--background", "--only", "icd10")

    assert sent.call_count == 1  # it did try the broker, and said so instead of printing a traceback
    assert not KnowledgeDocument.objects.exists()
