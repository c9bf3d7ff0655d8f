from django.apps import AppConfig


class ChatbotConfig(AppConfig):
    name = "chatbot"
    verbose_name = "Chatbot and knowledge base"

    def ready(self):
        from django.db.models.signals import post_delete

        # Registers the vector_store, embedding_model and generator checks of /service_status.
        from . import health  # noqa: F401
        from .models import Conversation

        # A conversation's attached documents may live in another database (VECTOR_DATABASE_URL), out of reach of
        # the delete cascade: they go with the conversation here, also when its owner's account is deleted.
        post_delete.connect(_delete_attached_documents, sender=Conversation, dispatch_uid="chatbot-attached-documents")


def _delete_attached_documents(sender, instance, **kwargs):
    from .services import conversation_documents_delete

    conversation_documents_delete(conversation_ids=[instance.pk])
