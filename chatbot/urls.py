"""Chat routes: the /chat/* JSON contract of DESIGN.md §4 (exact paths, no trailing slash), the chat pages, and the
staff knowledge-base API under /api/v1/knowledge/."""

from django.urls import path

from . import views
from .api import views as api

urlpatterns = [
    path("chat", views.chat_page, name="chat"),
    path("chat/start", api.StartView.as_view(), name="chat-start"),
    path("chat/message", api.MessageView.as_view(), name="chat-message"),
    path("chat/message/stream", api.MessageStreamView.as_view(), name="chat-message-stream"),
    path("chat/history", api.HistoryView.as_view(), name="chat-history"),
    path("chat/end", api.EndView.as_view(), name="chat-end"),
    # POST: rate an answer (JSON); GET: the staff feedback list page.
    path("chat/feedback", api.FeedbackView.as_view(), name="chat-feedback"),
    path("chat/status", api.StatusView.as_view(), name="chat-status"),
    path("chat/config", api.ConfigView.as_view(), name="chat-config"),
    path("chat/export", api.ExportView.as_view(), name="chat-export"),
    path("chat/import", api.ImportView.as_view(), name="chat-import"),
    path("chat/analytics", api.AnalyticsView.as_view(), name="chat-analytics"),
    path("chat/sources", views.sources_status, name="chat-sources"),
    path("chat/documents", api.DocumentsView.as_view(), name="chat-documents"),
    path("chat/documents/<int:document_id>", api.DocumentDetailView.as_view(), name="chat-document-detail"),
    path("chat/knowledge", views.knowledge_page, name="chat-knowledge"),
    path("chat/knowledge/rows", views.knowledge_rows, name="chat-knowledge-rows"),
    path("chat/knowledge/<int:document_id>/delete", views.knowledge_delete, name="chat-knowledge-delete"),
    path("api/v1/knowledge/documents/", api.KnowledgeDocumentListView.as_view(), name="knowledge-documents"),
    path(
        "api/v1/knowledge/documents/<int:document_id>/",
        api.KnowledgeDocumentDetailView.as_view(),
        name="knowledge-document-detail",
    ),
]
