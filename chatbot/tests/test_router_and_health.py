"""The vectors router sends only the knowledge base to VECTOR_DATABASE_URL's database; health checks report it."""

import pytest

from chatbot.models import Conversation, KnowledgeChunk, KnowledgeDocument, LexicalPosting, Message
from chatbot.routers import KnowledgeBaseRouter
from deepmed.health import registered_checks, run_checks

WITH_VECTORS = {"default": {"ENGINE": "django.db.backends.sqlite3"}, "vectors": {"ENGINE": "x"}}


def test_without_a_vectors_database_the_router_stays_out_of_the_way(settings):
    router = KnowledgeBaseRouter()
    assert router.db_for_read(KnowledgeChunk) is None
    assert router.allow_migrate("default", "chatbot", model_name="knowledgechunk") is None


def test_knowledge_base_goes_to_vectors_and_conversations_stay_on_default(settings):
    settings.DATABASES = WITH_VECTORS
    router = KnowledgeBaseRouter()
    for model in (KnowledgeDocument, KnowledgeChunk, LexicalPosting):
        assert router.db_for_read(model) == "vectors"
        assert router.db_for_write(model) == "vectors"
    for model in (Conversation, Message):
        assert router.db_for_write(model) is None


def test_migrate_on_vectors_creates_only_the_knowledge_base(settings):
    settings.DATABASES = WITH_VECTORS
    router = KnowledgeBaseRouter()
    assert router.allow_migrate("vectors", "chatbot", model_name="knowledgechunk") is True
    assert router.allow_migrate("vectors", "chatbot", model_name="conversation") is False
    assert router.allow_migrate("vectors", "accounts", model_name="user") is False
    assert router.allow_migrate("default", "chatbot", model_name="knowledgedocument") is False
    assert router.allow_migrate("default", "chatbot", model_name="message") is None


def test_chatbot_health_checks_are_registered_and_answer(db, settings):
    settings.CHAT_GENERATOR = "extractive"
    names = [check.name for check in registered_checks()]
    assert {"vector_store", "embedding_model", "generator"} <= set(names)
    results = run_checks()
    assert results["vector_store"]["status"] == "ok"
    assert results["embedding_model"]["status"] == "ok"
    assert results["generator"]["backend"] == "extractive"


@pytest.mark.parametrize("setting", ["http"])
def test_generator_check_is_degraded_when_the_endpoint_is_down(db, settings, setting):
    settings.CHAT_GENERATOR = setting
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    result = run_checks()["generator"]
    assert result["backend"] == "http"
    assert result["status"] == "degraded"
