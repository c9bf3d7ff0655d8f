"""Chatbot fixtures: the real MiniLM embedder (once per session, with a per-text memo so re-ingesting the same
small corpus in many tests costs nothing), a small fixed knowledge base of guide, ICD-10-CM and HPO documents, and
JWT-authenticated API clients for the personas."""

import numpy as np
import pytest

CORPUS_GUIDE = ("training", "uploading-data", "api", "accounts")
CORPUS_ICD = ("E11", "E10", "I10", "J45")
CORPUS_HPO = ("HP:0000822", "HP:0001250", "HP:0002315")


class MemoEmbedder:
    """The real embedder, remembering each text's vector: same results, a fraction of the time."""

    def __init__(self, inner):
        self.inner = inner
        self.dimension = inner.dimension
        self.memo = {}

    def encode(self, texts):
        texts = list(texts)
        missing = [text for text in dict.fromkeys(texts) if text not in self.memo]
        if missing:
            for text, vector in zip(missing, self.inner.encode(missing), strict=True):
                self.memo[text] = vector
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([self.memo[text] for text in texts]).astype(np.float32)


@pytest.fixture(scope="session")
def chat_embedder():
    from chatbot.rag.embedding import get_embedder

    return MemoEmbedder(get_embedder())


@pytest.fixture(autouse=True)
def _chat_settings(settings, chat_embedder, monkeypatch):
    """Extractive answers (deterministic, no model download) and the memo embedder everywhere in the app."""
    from chatbot import generation, services

    settings.CHAT_GENERATOR = "extractive"
    settings.CHAT_SELECTABLE_BACKENDS = ["auto", "extractive"]
    settings.LLM_BASE_URL = ""
    monkeypatch.setattr(services, "embedder_get", lambda: chat_embedder)
    generation.reset_generators()
    yield
    generation.reset_generators()


@pytest.fixture(scope="session")
def corpus_sources():
    from chatbot.knowledge_sources import guide_documents
    from chatbot.rag.sources import hpo_documents, icd10cm_documents

    guide = [doc for doc in guide_documents() if doc.key.split(":", 1)[1] in CORPUS_GUIDE]
    icd = {doc.code.split()[-1]: doc for doc in icd10cm_documents() if doc.code}
    hpo = {doc.code.split()[-1]: doc for doc in hpo_documents() if doc.code}
    return guide + [icd[code] for code in CORPUS_ICD] + [hpo[code] for code in CORPUS_HPO]


@pytest.fixture
def kb(db, corpus_sources, chat_embedder):
    from chatbot import services

    services.knowledge_base_load(sources=corpus_sources, embedder=chat_embedder)
    return corpus_sources


def jwt_client(user):
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def alice_api(alice):
    return jwt_client(alice)


@pytest.fixture
def bob_api(bob, second_factor_token):
    """bob's token from a sign-in with his two-factor code: staff endpoints require one."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {second_factor_token(bob)}")
    return client


@pytest.fixture
def charlie_api(charlie):
    return jwt_client(charlie)
