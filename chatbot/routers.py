"""Database router: the knowledge base goes to the `vectors` database when VECTOR_DATABASE_URL configures one.

Conversations, messages and feedback stay on `default` with the users they belong to. Without a `vectors` database
everything lives in `default` and this router stays out of the way (returns None).
"""

from django.conf import settings

VECTOR_ALIAS = "vectors"
KNOWLEDGE_BASE_MODELS = frozenset({"knowledgedocument", "knowledgechunk", "lexicalposting"})


def vector_database_configured() -> bool:
    return VECTOR_ALIAS in settings.DATABASES


def is_knowledge_base_model(app_label: str, model_name: str | None) -> bool:
    return app_label == "chatbot" and (model_name or "").lower() in KNOWLEDGE_BASE_MODELS


class KnowledgeBaseRouter:
    """Sends the knowledge-base models to `vectors` (when configured) and nothing else there."""

    def _target(self, model) -> str | None:
        if vector_database_configured() and is_knowledge_base_model(model._meta.app_label, model._meta.model_name):
            return VECTOR_ALIAS
        return None

    def db_for_read(self, model, **hints):
        return self._target(model)

    def db_for_write(self, model, **hints):
        return self._target(model)

    def allow_relation(self, obj1, obj2, **hints):
        if not vector_database_configured():
            return None
        # Documents point at users and groups by id only (no constraint), so those links are allowed across.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if not vector_database_configured():
            return None
        knowledge_base = is_knowledge_base_model(app_label, model_name)
        if db == VECTOR_ALIAS:
            return knowledge_base
        if knowledge_base:
            return False
        return None
