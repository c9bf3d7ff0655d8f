"""The /chat/* JSON routes (DESIGN.md §4) and the staff knowledge-base API. Thin: validate, call a service, shape.

Session (with CSRF) or JWT Bearer; every route needs a signed-in user and is throttled per user (scope "chat").
Another user's conversation or message is 404, never 403.
"""

import json

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from accounts.audit import audit_record
from accounts.permissions import STAFF_ONLY, IsVerifiedStaff, request_has_staff_powers, staff_page_refusal
from chatbot import selectors, services
from deepmed.api_schema import error_response
from deepmed.exceptions import ApplicationError

from . import serializers as s

TAG = "chat"


class ChatRateThrottle(UserRateThrottle):
    """Per-user rate of the chat routes (CHAT_THROTTLE_RATE), read from settings on each request."""

    scope = "chat"

    @property
    def THROTTLE_RATES(self):  # noqa: N802  (the name DRF looks up)
        return api_settings.DEFAULT_THROTTLE_RATES


class ChatView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [ChatRateThrottle]
    parser_classes = [JSONParser, FormParser, MultiPartParser]


class StartView(ChatView):
    @extend_schema(
        operation_id="chat_start",
        tags=[TAG],
        summary="Start a conversation",
        request=s.StartSerializer,
        responses={200: s.StartResultSerializer, 401: error_response("Not signed in.")},
    )
    def post(self, request):
        serializer = s.StartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = services.conversation_start(user=request.user, title=serializer.validated_data.get("title", ""))
        return Response({"conversation_id": conversation.pk})


class MessageView(ChatView):
    @extend_schema(
        operation_id="chat_message",
        tags=[TAG],
        summary="Ask a question in a conversation",
        description=(
            "Answers from the knowledge base with numbered citations: `[n]` in `answer` is `sources[n-1]`. Requests "
            "for a diagnosis, patient-specific dosing or emergencies get a fixed refusal (`refused`); when nothing "
            "relevant is found the answer says so (`no_answer`) and `sources` is empty. Personal data in the "
            "message (emails, phone numbers, ID-like numbers) is masked before it is stored or used."
        ),
        request=s.MessageRequestSerializer,
        responses={
            200: s.MessageResultSerializer,
            400: error_response("Empty or too long message (`empty_message`, `message_too_long`)."),
            404: error_response("No such conversation of yours."),
            409: error_response("The conversation has ended (`conversation_ended`)."),
            429: error_response("Too many requests (CHAT_THROTTLE_RATE)."),
        },
    )
    def post(self, request):
        serializer = s.MessageRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=serializer.validated_data["conversation_id"]
        )
        message = services.message_send(
            user=request.user, conversation=conversation, text=serializer.validated_data["message"]
        )
        return Response(s.message_result(message))


def _server_sent_events(events):
    for event, data in events:
        yield f"event: {event}\ndata: {json.dumps(data, cls=DjangoJSONEncoder)}\n\n"


class MessageStreamView(ChatView):
    def perform_content_negotiation(self, request, force=False):
        # The stream is not a DRF rendering: an `Accept: text/event-stream` must not make DRF answer 406, and
        # errors raised before the stream starts are rendered as the usual JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="chat_message_stream",
        tags=[TAG],
        summary="Ask a question and receive the answer as server-sent events while it is written",
        description=(
            "The same question as /chat/message, answered as `text/event-stream`: `extractive` (the quoted answer "
            "with its `sources` and `see_also`, at once), then with the `http` or `local` generator `delta` events "
            '(`{"text"}` pieces of the model\'s answer) or `fallback` when the model fails or stays silent for '
            "LLM_TIMEOUT_SECONDS (the quoted answer stands), and last `done`: the stored answer, shaped like "
            '/chat/message\'s reply. A refusal or "nothing relevant" comes as `done` alone. Bad input is refused '
            "with the usual JSON error before the stream starts."
        ),
        request=s.MessageRequestSerializer,
        responses={
            (200, "text/event-stream"): OpenApiTypes.STR,
            400: error_response("Empty or too long message (`empty_message`, `message_too_long`)."),
            404: error_response("No such conversation of yours."),
            409: error_response("The conversation has ended (`conversation_ended`)."),
        },
    )
    def post(self, request):
        serializer = s.MessageRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=serializer.validated_data["conversation_id"]
        )
        events = services.message_stream(
            user=request.user, conversation=conversation, text=serializer.validated_data["message"]
        )
        response = StreamingHttpResponse(_server_sent_events(events), content_type="text/event-stream")
        # Proxies must pass each event on as it comes (nginx buffers otherwise).
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


def _conversation_summary(conversation) -> dict:
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "started_at": conversation.started_at,
        "ended_at": conversation.ended_at,
        "n_messages": getattr(conversation, "n_messages", None) or conversation.messages.count(),
    }


class HistoryView(ChatView):
    @extend_schema(
        operation_id="chat_history",
        tags=[TAG],
        summary="A conversation's messages, or the list of your conversations",
        parameters=[
            OpenApiParameter(
                "conversation_id",
                OpenApiTypes.INT,
                required=False,
                description="Without it: your conversations, newest first.",
            )
        ],
        responses={200: s.HistorySerializer, 404: error_response("No such conversation of yours.")},
    )
    def get(self, request):
        conversation_id = request.query_params.get("conversation_id")
        if not conversation_id:
            conversations = selectors.conversation_list_for_user(user=request.user)
            return Response({"conversations": [_conversation_summary(c) for c in conversations]})
        conversation = selectors.conversation_get_for_user(user=request.user, conversation_id=conversation_id)
        messages = selectors.message_list(conversation=conversation)
        return Response(
            {
                "conversation": _conversation_summary(conversation),
                "messages": [s.history_message(message, user=request.user) for message in messages],
            }
        )


class EndView(ChatView):
    @extend_schema(
        operation_id="chat_end",
        tags=[TAG],
        summary="End a conversation (no more questions in it)",
        request=s.ConversationIdSerializer,
        responses={200: s.EndResultSerializer, 404: error_response("No such conversation of yours.")},
    )
    def post(self, request):
        serializer = s.ConversationIdSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=serializer.validated_data["conversation_id"]
        )
        conversation = services.conversation_end(conversation=conversation)
        return Response({"conversation_id": conversation.pk, "ended_at": conversation.ended_at})


class FeedbackView(ChatView):
    """POST: rate an answer (JSON). GET (staff, in a browser): the feedback list page, thumbs-down first."""

    def get_permissions(self):
        if self.request.method == "GET":
            return [AllowAny()]  # the page handles signing in and staff itself (a redirect, not a JSON 401)
        return super().get_permissions()

    @extend_schema(exclude=True)
    def get(self, request):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        refusal = staff_page_refusal(request)
        if refusal is not None:
            return refusal
        feedback = list(selectors.feedback_list_for_staff()[:500])
        return render(request, "chatbot/feedback_list.html", {"feedback": feedback})

    @extend_schema(
        operation_id="chat_feedback",
        tags=[TAG],
        summary="Rate an answer (thumbs up 1, down -1) with an optional comment",
        request=s.FeedbackRequestSerializer,
        responses={
            200: s.FeedbackResultSerializer,
            400: error_response("Not an answer, or a bad rating."),
            404: error_response("No such message in your conversations."),
        },
    )
    def post(self, request):
        serializer = s.FeedbackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = selectors.message_get_for_user(user=request.user, message_id=serializer.validated_data["message_id"])
        feedback = services.feedback_give(
            user=request.user,
            message=message,
            rating=serializer.validated_data["rating"],
            comment=serializer.validated_data.get("comment", ""),
        )
        return Response({"message_id": message.pk, "rating": feedback.rating, "comment": feedback.comment})


def chat_status() -> dict:
    from chatbot.generation import generator_backend_name
    from chatbot.health import check_embedding_model, check_generator
    from chatbot.vectorstore import get_vector_store

    store = get_vector_store()
    return {
        "backend": generator_backend_name(),
        "generator": check_generator(),
        "knowledge_base": selectors.knowledge_base_counts(),
        "vector_store": {"backend": store.name, "database": store.alias},
        "embedding_model": check_embedding_model(),
    }


class StatusView(ChatView):
    @extend_schema(
        operation_id="chat_status",
        tags=[TAG],
        summary="Generator in use, knowledge-base size, vector store, embedding model and each source's readiness",
        responses={200: s.StatusSerializer},
    )
    def get(self, request):
        return Response({**chat_status(), "sources": selectors.knowledge_source_progress(user=request.user)})


def _config(user) -> dict:
    from chatbot.generation import generator_backend_name

    preference = services.preference_get(user=user)
    return {
        "answer_length": preference.answer_length,
        "backend": preference.backend,
        "show_sources": preference.show_sources,
        "allowed_backends": list(settings.CHAT_SELECTABLE_BACKENDS),
        "effective_backend": generator_backend_name(preference.backend),
    }


class ConfigView(ChatView):
    @extend_schema(
        operation_id="chat_config_get",
        tags=[TAG],
        summary="Your chat settings",
        responses={200: s.ConfigResultSerializer},
    )
    def get(self, request):
        return Response(_config(request.user))

    @extend_schema(
        operation_id="chat_config_set",
        tags=[TAG],
        summary="Change your chat settings (answer length, generator from the allowed list, sources shown)",
        request=s.ConfigSerializer,
        responses={200: s.ConfigResultSerializer, 400: error_response("A value that is not allowed.")},
    )
    def post(self, request):
        serializer = s.ConfigSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.preference_update(user=request.user, **serializer.validated_data)
        return Response(_config(request.user))


class ExportView(ChatView):
    @extend_schema(
        operation_id="chat_export",
        tags=[TAG],
        summary="A conversation as JSON (messages, sources, feedback, format version)",
        parameters=[OpenApiParameter("conversation_id", OpenApiTypes.INT, required=True)],
        responses={200: OpenApiTypes.OBJECT, 404: error_response("No such conversation of yours.")},
    )
    def get(self, request):
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=request.query_params.get("conversation_id")
        )
        data = services.conversation_export(conversation=conversation)
        response = Response(data)
        response["Content-Disposition"] = f'attachment; filename="deepmed-conversation-{conversation.pk}.json"'
        return response


class ImportView(ChatView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        operation_id="chat_import",
        tags=[TAG],
        summary="Import a conversation exported by /chat/export (JSON body, or multipart `file`)",
        request=s.ImportSerializer,
        responses={
            201: s.ImportResultSerializer,
            400: error_response("Not a valid export, or larger than CHAT_IMPORT_MAX_BYTES (`import_too_large`)."),
        },
    )
    def post(self, request):
        limit = settings.CHAT_IMPORT_MAX_BYTES
        too_large = ApplicationError(
            f"The conversation file is larger than {limit} bytes (CHAT_IMPORT_MAX_BYTES).", code="import_too_large"
        )
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        upload = request.FILES.get("file") if request.content_type.startswith("multipart/") else None
        if upload is not None:
            if upload.size > limit:
                raise too_large
            try:
                data = json.loads(upload.read().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApplicationError("The file is not JSON: export the conversation again.", code="invalid") from exc
        else:
            # Checked before the body is parsed, so an oversized body is never read into memory.
            if declared > limit:
                raise too_large
            data = request.data
        serializer = s.ImportSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        conversation = services.conversation_import(user=request.user, data=serializer.validated_data)
        return Response(
            {"conversation_id": conversation.pk, "messages": conversation.messages.count()},
            status=status.HTTP_201_CREATED,
        )


class AnalyticsView(ChatView):
    @extend_schema(
        operation_id="chat_analytics",
        tags=[TAG],
        summary="Your chat figures; staff also get platform totals",
        description=(
            "conversations, messages, feedback ratio (thumbs up / rated), latency p50/p95 of answers in ms, and the "
            "questions most often left without an answer."
        ),
        responses={200: s.AnalyticsSerializer},
    )
    def get(self, request):
        data = {"user": selectors.chat_analytics_for_user(user=request.user)}
        if request_has_staff_powers(request):
            data["platform"] = selectors.chat_analytics_platform()
        return Response(data)


class DocumentsView(ChatView):
    """Documents attached to one of your conversations: private to you and to it, cited beside the shared base."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="chat_documents_list",
        tags=[TAG],
        summary="The documents you attached to a conversation, with their indexing status",
        parameters=[OpenApiParameter("conversation_id", OpenApiTypes.INT, required=True)],
        responses={200: s.AttachedDocumentListSerializer, 404: error_response("No such conversation of yours.")},
    )
    def get(self, request):
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=request.query_params.get("conversation_id")
        )
        documents = selectors.attached_document_list(conversation=conversation)
        return Response({"documents": [s.attached_document(document) for document in documents]})

    @extend_schema(
        operation_id="chat_documents_attach",
        tags=[TAG],
        summary="Attach a document (PDF with text, Markdown or plain text) to a conversation of yours",
        description=(
            "The document is private to you and to this conversation. Personal data in it (names given with a "
            "label or title, emails, phone numbers, ID-like numbers, dates) is masked before it is stored; it is "
            "then chunked and embedded like the shared knowledge base (`status` goes from queued to ready), and "
            "answers in this conversation cite it beside the shared sources."
        ),
        request={"multipart/form-data": s.AttachDocumentSerializer},
        responses={
            202: s.AttachedDocumentSerializer,
            400: error_response(
                "Too large (`file_too_large`, CHAT_ATTACHMENT_MAX_MB), a scan without text (`no_text`), another kind "
                "of file (`unsupported_file`), empty, or too many documents in the conversation."
            ),
            404: error_response("No such conversation of yours."),
            409: error_response("The conversation has ended (`conversation_ended`)."),
        },
    )
    def post(self, request):
        serializer = s.AttachDocumentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=serializer.validated_data["conversation_id"]
        )
        upload = serializer.validated_data["file"]
        document = services.conversation_document_attach(
            user=request.user, conversation=conversation, data=upload.read(), filename=upload.name or ""
        )
        return Response(s.attached_document(document), status=status.HTTP_202_ACCEPTED)


class DocumentDetailView(ChatView):
    @extend_schema(
        operation_id="chat_documents_destroy",
        tags=[TAG],
        summary="Remove a document you attached (its passages go with it)",
        responses={204: None, 404: error_response("No such attached document of yours.")},
    )
    def delete(self, request, document_id: int):
        document = selectors.attached_document_get_for_user(user=request.user, document_id=document_id)
        services.knowledge_document_delete(document=document)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- knowledge base (staff) ----------------------------------------------------------------------------------------


class KnowledgeDocumentListView(APIView):
    permission_classes = [IsVerifiedStaff]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="knowledge_documents_list",
        tags=["knowledge"],
        summary="Knowledge-base documents with ingestion status (staff)",
        responses={200: s.KnowledgeDocumentSerializer(many=True), 403: error_response(STAFF_ONLY)},
    )
    def get(self, request):
        documents = selectors.knowledge_document_list()
        return Response(s.KnowledgeDocumentSerializer(documents[:1000], many=True).data)

    @extend_schema(
        operation_id="knowledge_documents_create",
        tags=["knowledge"],
        summary="Add a document (file or text); it is chunked and embedded on the chatbot queue (staff)",
        request={
            "multipart/form-data": s.KnowledgeDocumentCreateSerializer,
            "application/json": s.KnowledgeDocumentCreateSerializer,
        },
        responses={
            202: s.KnowledgeDocumentSerializer,
            400: error_response("No text, unreadable file."),
            403: error_response(STAFF_ONLY),
        },
    )
    def post(self, request):
        serializer = s.KnowledgeDocumentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = knowledge_document_create_from(request=request, data=serializer.validated_data)
        return Response(s.KnowledgeDocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


def knowledge_document_create_from(*, request, data: dict):
    """Shared by the API and the staff page: read the file or text, check the group, create and audit."""
    group = None
    if data.get("group"):
        group = Group.objects.filter(pk=data["group"]).first()
        if group is None:
            raise ApplicationError("No group with this id.", code="invalid_group")
    if data.get("file") is not None:
        upload = data["file"]
        content, fmt = services.document_text_from_upload(data=upload.read(), filename=upload.name or "")
    else:
        content, fmt = data["text"], data.get("format") or "markdown"
    document = services.knowledge_document_create(
        user=request.user,
        title=data["title"],
        content=content,
        fmt=fmt,
        source=data.get("source") or "Uploaded",
        licence=data.get("licence") or "",
        version=data.get("version") or "",
        language=data.get("language") or "en",
        code=data.get("code") or "",
        group=group,
    )
    audit_record(
        action="chatbot.document_added", request=request, target=document, details={"group": data.get("group")}
    )
    return document


class KnowledgeDocumentDetailView(APIView):
    permission_classes = [IsVerifiedStaff]

    @extend_schema(
        operation_id="knowledge_documents_retrieve",
        tags=["knowledge"],
        summary="One knowledge-base document (staff)",
        responses={
            200: s.KnowledgeDocumentSerializer,
            403: error_response(STAFF_ONLY),
            404: error_response("No such document."),
        },
    )
    def get(self, request, document_id: int):
        return Response(s.KnowledgeDocumentSerializer(selectors.knowledge_document_get(document_id=document_id)).data)

    @extend_schema(
        operation_id="knowledge_documents_destroy",
        tags=["knowledge"],
        summary="Delete a document and its chunks (staff)",
        responses={204: None, 403: error_response(STAFF_ONLY), 404: error_response("No such document.")},
    )
    def delete(self, request, document_id: int):
        document = selectors.knowledge_document_get(document_id=document_id)
        audit_record(action="chatbot.document_deleted", request=request, target=document)
        services.knowledge_document_delete(document=document)
        return Response(status=status.HTTP_204_NO_CONTENT)
