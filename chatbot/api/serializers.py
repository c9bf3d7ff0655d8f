"""Request and response shapes of the /chat/* routes and the knowledge-base API (DESIGN.md §4)."""

from django.conf import settings
from rest_framework import serializers

from chatbot.models import ChatPreference, KnowledgeDocument, Message

MAX_IMPORTED_MESSAGES = 2000


class StartSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)


class StartResultSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField()


class ConversationIdSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField(min_value=1)


class MessageRequestSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField(min_value=1)
    # Length and emptiness are checked by the service, so the API and the page give the same message.
    message = serializers.CharField(allow_blank=True, trim_whitespace=False)


class SourceSerializer(serializers.Serializer):
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    excerpt = serializers.CharField()
    score = serializers.FloatField()
    code = serializers.CharField(required=False, allow_blank=True)
    chunk_key = serializers.CharField(required=False, allow_blank=True)


class MessageResultSerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    answer = serializers.CharField()
    sources = SourceSerializer(many=True, help_text="The documents the answer cites: `[n]` is sources[n-1].")
    see_also = SourceSerializer(
        many=True, help_text="Other retrieved documents the answer does not use, most relevant first."
    )
    backend = serializers.CharField()
    refused = serializers.BooleanField()
    no_answer = serializers.BooleanField()
    latency_ms = serializers.IntegerField(allow_null=True)


def message_result(message: Message) -> dict:
    return {
        "message_id": message.pk,
        "answer": message.text,
        "sources": message.sources,
        "see_also": message.see_also,
        "backend": message.backend,
        "refused": message.refused,
        "no_answer": message.no_answer,
        "latency_ms": message.latency_ms,
    }


class FeedbackOutSerializer(serializers.Serializer):
    rating = serializers.IntegerField()
    comment = serializers.CharField(allow_blank=True)


class HistoryMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.CharField()
    text = serializers.CharField()
    sources = SourceSerializer(many=True)
    see_also = SourceSerializer(many=True)
    backend = serializers.CharField(allow_blank=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    refused = serializers.BooleanField()
    no_answer = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    feedback = FeedbackOutSerializer(allow_null=True)


def history_message(message: Message, *, user) -> dict:
    mine = next((feedback for feedback in message.feedback.all() if feedback.user_id == user.pk), None)
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "sources": message.sources,
        "see_also": message.see_also,
        "backend": message.backend,
        "latency_ms": message.latency_ms,
        "refused": message.refused,
        "no_answer": message.no_answer,
        "created_at": message.created_at,
        "feedback": {"rating": mine.rating, "comment": mine.comment} if mine else None,
    }


class ConversationSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    n_messages = serializers.IntegerField()


class HistorySerializer(serializers.Serializer):
    conversation = ConversationSummarySerializer(required=False)
    messages = HistoryMessageSerializer(many=True, required=False)
    conversations = ConversationSummarySerializer(many=True, required=False)


class EndResultSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    ended_at = serializers.DateTimeField()


class FeedbackRequestSerializer(serializers.Serializer):
    message_id = serializers.IntegerField(min_value=1)
    rating = serializers.ChoiceField(choices=[1, -1])
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class FeedbackResultSerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    rating = serializers.IntegerField()
    comment = serializers.CharField(allow_blank=True)


class StatusSerializer(serializers.Serializer):
    backend = serializers.CharField()
    generator = serializers.DictField()
    knowledge_base = serializers.DictField()
    vector_store = serializers.DictField()
    embedding_model = serializers.DictField()
    sources = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per source you may read: documents, ready, waiting, failed, progress (0..1), percent and state "
        "(ready, indexing or failed).",
    )


class ConfigSerializer(serializers.Serializer):
    answer_length = serializers.ChoiceField(choices=ChatPreference.AnswerLength.choices, required=False)
    backend = serializers.CharField(required=False, max_length=16)
    show_sources = serializers.BooleanField(required=False)


class ConfigResultSerializer(serializers.Serializer):
    answer_length = serializers.CharField()
    backend = serializers.CharField()
    show_sources = serializers.BooleanField()
    allowed_backends = serializers.ListField(child=serializers.CharField())
    effective_backend = serializers.CharField()


class ImportFeedbackSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=[1, -1])
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ImportSourceSerializer(serializers.Serializer):
    document_id = serializers.IntegerField(required=False, allow_null=True)
    title = serializers.CharField(max_length=300, allow_blank=True)
    excerpt = serializers.CharField(max_length=5000, allow_blank=True)
    score = serializers.FloatField(required=False, allow_null=True)
    code = serializers.CharField(required=False, allow_blank=True, max_length=100)
    chunk_key = serializers.CharField(required=False, allow_blank=True, max_length=191)


class ImportMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Message.Role.choices)
    text = serializers.CharField(max_length=20000, allow_blank=True, trim_whitespace=False)
    sources = ImportSourceSerializer(many=True, required=False)
    see_also = ImportSourceSerializer(many=True, required=False)
    backend = serializers.CharField(required=False, allow_blank=True, max_length=32)
    latency_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    refused = serializers.BooleanField(required=False, default=False)
    no_answer = serializers.BooleanField(required=False, default=False)
    feedback = ImportFeedbackSerializer(many=True, required=False)


class ImportConversationSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)
    ended_at = serializers.DateTimeField(required=False, allow_null=True)
    config = serializers.DictField(required=False)


class ImportSerializer(serializers.Serializer):
    """What /chat/export writes; anything else is refused with the field that is wrong."""

    format = serializers.CharField()
    version = serializers.IntegerField()
    conversation = ImportConversationSerializer()
    messages = ImportMessageSerializer(many=True)

    def validate_format(self, value):
        from chatbot.services import EXPORT_FORMAT

        if value != EXPORT_FORMAT:
            raise serializers.ValidationError(f"Not a DeepMed conversation export (format must be {EXPORT_FORMAT!r}).")
        return value

    def validate_version(self, value):
        from chatbot.services import EXPORT_VERSION

        if value != EXPORT_VERSION:
            raise serializers.ValidationError(
                f"Unsupported export version {value}; this server reads {EXPORT_VERSION}."
            )
        return value

    def validate_messages(self, value):
        if len(value) > MAX_IMPORTED_MESSAGES:
            raise serializers.ValidationError(f"At most {MAX_IMPORTED_MESSAGES} messages can be imported.")
        return value


class ImportResultSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    messages = serializers.IntegerField()


class AttachDocumentSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField(min_value=1)
    file = serializers.FileField(help_text="A PDF with text, a Markdown or a plain-text file (UTF-8).")

    def validate_file(self, value):
        # Refused before it is read into memory; the service checks the bytes again.
        if value.size > settings.CHAT_ATTACHMENT_MAX_MB * 1024 * 1024:
            raise serializers.ValidationError(
                f"The file is larger than {settings.CHAT_ATTACHMENT_MAX_MB} MB (CHAT_ATTACHMENT_MAX_MB).",
                code="file_too_large",
            )
        return value


class AttachedDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    error = serializers.CharField(allow_blank=True)
    n_chunks = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class AttachedDocumentListSerializer(serializers.Serializer):
    documents = AttachedDocumentSerializer(many=True)


def attached_document(document: KnowledgeDocument) -> dict:
    return {
        "id": document.pk,
        "conversation_id": document.conversation_id,
        "title": document.title,
        "status": document.status,
        "progress": document.progress,
        "error": document.error,
        "n_chunks": document.n_chunks,
        "created_at": document.created_at,
    }


class AnalyticsSerializer(serializers.Serializer):
    user = serializers.DictField()
    platform = serializers.DictField(required=False)


class KnowledgeDocumentSerializer(serializers.ModelSerializer):
    group = serializers.IntegerField(source="group_id", allow_null=True, read_only=True)

    class Meta:
        model = KnowledgeDocument
        fields = [
            "id",
            "key",
            "title",
            "source",
            "code",
            "version",
            "licence",
            "language",
            "format",
            "group",
            "status",
            "progress",
            "error",
            "n_chunks",
            "content_sha256",
            "created_at",
            "updated_at",
            "ingested_at",
        ]
        read_only_fields = fields


class KnowledgeDocumentCreateSerializer(serializers.Serializer):
    """Either a `file` (Markdown, text, HTML or PDF) or `text`, with a title and where it comes from."""

    title = serializers.CharField(max_length=300)
    file = serializers.FileField(required=False)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    format = serializers.ChoiceField(
        choices=KnowledgeDocument.Format.choices, required=False, default=KnowledgeDocument.Format.MARKDOWN
    )
    source = serializers.CharField(required=False, allow_blank=True, max_length=200, default="Uploaded")
    licence = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    version = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    language = serializers.CharField(required=False, allow_blank=True, max_length=16, default="en")
    code = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    group = serializers.IntegerField(required=False, allow_null=True)

    def validate(self, attrs):
        has_file = attrs.get("file") is not None
        has_text = bool((attrs.get("text") or "").strip())
        if has_file == has_text:
            raise serializers.ValidationError("Send either a file or text (exactly one of them).")
        if has_file and attrs["file"].size > settings.CHAT_MAX_DOCUMENT_MB * 1024 * 1024:
            raise serializers.ValidationError(
                f"The file is larger than {settings.CHAT_MAX_DOCUMENT_MB} MB (CHAT_MAX_DOCUMENT_MB)."
            )
        return attrs
