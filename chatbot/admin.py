"""Admin for the knowledge base and conversations (read-mostly: answers are records of what was said)."""

from django.contrib import admin

from .models import ChatPreference, Conversation, Feedback, KnowledgeChunk, KnowledgeDocument, Message


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "source", "code", "status", "n_chunks", "group", "updated_at"]
    list_filter = ["status", "source", "language"]
    search_fields = ["title", "code", "key"]
    readonly_fields = ["key", "content_sha256", "status", "progress", "error", "n_chunks", "created_at", "updated_at"]

    def get_queryset(self, request):
        # Staff curate the shared knowledge base; the documents users attach to their conversations are theirs.
        return super().get_queryset(request).filter(owner_id__isnull=True)


@admin.register(KnowledgeChunk)
class KnowledgeChunkAdmin(admin.ModelAdmin):
    list_display = ["key", "document", "ordinal", "code", "n_terms"]
    search_fields = ["key", "code"]
    exclude = ["embedding_f32"]
    readonly_fields = ["document", "key", "ordinal", "text", "heading", "code", "metadata", "n_terms"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(document__owner_id__isnull=True)


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["role", "text", "backend", "latency_ms", "refused", "no_answer", "created_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "title", "started_at", "ended_at"]
    search_fields = ["owner__email", "title"]
    inlines = [MessageInline]
    readonly_fields = ["owner", "started_at", "config"]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["message", "user", "rating", "created_at"]
    list_filter = ["rating"]
    readonly_fields = ["message", "user", "rating", "comment", "created_at"]


@admin.register(ChatPreference)
class ChatPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "answer_length", "backend", "show_sources"]
