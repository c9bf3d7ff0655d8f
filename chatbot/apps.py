from django.apps import AppConfig


class ChatbotConfig(AppConfig):
    name = "chatbot"
    verbose_name = "Chatbot and knowledge base"

    def ready(self):
        # Registers the vector_store, embedding_model and generator checks of /service_status.
        from . import health  # noqa: F401
