"""Chatbot reads: a user's conversations and messages, the knowledge base as staff see it, analytics."""

from __future__ import annotations

from collections import Counter

import numpy as np
from django.db.models import Count, Q, Sum

from deepmed.exceptions import NotFound

from .models import Conversation, Feedback, KnowledgeChunk, KnowledgeDocument, Message
from .vectorstore import knowledge_base_alias

TOP_UNANSWERED = 10


def conversation_list_for_user(*, user):
    return Conversation.objects.filter(owner=user).annotate(n_messages=Count("messages")).order_by("-started_at", "-id")


def conversation_get_for_user(*, user, conversation_id) -> Conversation:
    """The user's own conversation; anyone else's (or a malformed id) is "not found", never "forbidden"."""
    try:
        return Conversation.objects.get(owner=user, pk=int(conversation_id))
    except (Conversation.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("No conversation with this id belongs to you.", code="conversation_not_found") from exc


def message_get_for_user(*, user, message_id) -> Message:
    try:
        return Message.objects.select_related("conversation").get(conversation__owner=user, pk=int(message_id))
    except (Message.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("No message with this id belongs to you.", code="message_not_found") from exc


def message_list(*, conversation: Conversation):
    return conversation.messages.prefetch_related("feedback").order_by("created_at", "id")


def shared_documents():
    """The shared knowledge base: every document but those users attached to their conversations."""
    return KnowledgeDocument.objects.using(knowledge_base_alias()).filter(owner_id__isnull=True)


def knowledge_document_list():
    return shared_documents().order_by("-updated_at", "-id")


def knowledge_document_get(*, document_id) -> KnowledgeDocument:
    """A document of the shared knowledge base; a user's attached document is "not found" here, for staff too."""
    try:
        return shared_documents().get(pk=int(document_id))
    except (KnowledgeDocument.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("No knowledge-base document with this id.", code="document_not_found") from exc


def attached_document_list(*, conversation: Conversation):
    """The documents the conversation's owner attached to it, oldest first."""
    return (
        KnowledgeDocument.objects.using(knowledge_base_alias())
        .filter(owner_id=conversation.owner_id, conversation_id=conversation.pk)
        .defer("content")
        .order_by("created_at", "id")
    )


def attached_document_get_for_user(*, user, document_id) -> KnowledgeDocument:
    """One of the user's own attached documents; anyone else's (or a shared one) is "not found"."""
    try:
        return KnowledgeDocument.objects.using(knowledge_base_alias()).get(owner_id=user.pk, pk=int(document_id))
    except (KnowledgeDocument.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("No attached document with this id belongs to you.", code="document_not_found") from exc


def knowledge_base_counts() -> dict:
    alias = knowledge_base_alias()
    documents = shared_documents()
    by_status = dict(documents.values_list("status").annotate(n=Count("id")).values_list("status", "n").order_by())
    by_source = dict(documents.values_list("source").annotate(n=Count("id")).values_list("source", "n").order_by())
    return {
        "documents": sum(by_status.values()),
        "chunks": KnowledgeChunk.objects.using(alias).filter(document__owner_id__isnull=True).count(),
        "by_status": by_status,
        "by_source": by_source,
        "ingesting": documents.filter(
            status__in=[KnowledgeDocument.Status.QUEUED, KnowledgeDocument.Status.INGESTING]
        ).count(),
        "total_chunks_recorded": documents.aggregate(n=Sum("n_chunks"))["n"] or 0,
    }


def knowledge_source_progress(*, user=None) -> list[dict]:
    """Per source of the knowledge base, by name: how many documents it has, how many are ready, waiting (queued or
    being indexed) or failed, and how far it is (ready documents plus the progress of the waiting ones, 0..1).

    With `user`, only the documents that user may read count (no group, or one of their groups).
    """
    documents = shared_documents()
    if user is not None:
        group_ids = list(user.groups.values_list("id", flat=True)) if user.is_authenticated else []
        documents = documents.filter(Q(group_id__isnull=True) | Q(group_id__in=group_ids))
    rows = documents.values_list("source", "status").annotate(n=Count("id"), progress=Sum("progress"))
    by_source: dict[str, dict] = {}
    waiting_states = {KnowledgeDocument.Status.QUEUED, KnowledgeDocument.Status.INGESTING}
    for source, status, n, progress in rows.order_by():
        entry = by_source.setdefault(
            source, {"source": source, "documents": 0, "ready": 0, "waiting": 0, "failed": 0, "done": 0.0}
        )
        entry["documents"] += n
        if status == KnowledgeDocument.Status.READY:
            entry["ready"] += n
            entry["done"] += n
        elif status in waiting_states:
            entry["waiting"] += n
            entry["done"] += float(progress or 0.0)
        else:
            entry["failed"] += n
    result = []
    for source in sorted(by_source):
        entry = by_source.pop(source)
        done = entry.pop("done")
        entry["progress"] = round(done / entry["documents"], 3) if entry["documents"] else 1.0
        entry["percent"] = int(entry["progress"] * 100)
        entry["state"] = "indexing" if entry["waiting"] else ("failed" if entry["failed"] else "ready")
        result.append(entry)
    return result


def feedback_list_for_staff():
    """Every rating, thumbs-down first, newest first within each."""
    return Feedback.objects.select_related("message", "message__conversation", "user").order_by("rating", "-created_at")


def _percentile(values: list[int], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def chat_analytics(*, conversations, messages, feedback) -> dict:
    """Conversations, messages, feedback ratio, latency p50/p95 and the top unanswered questions of these rows."""
    latencies = list(
        messages.filter(role=Message.Role.ASSISTANT, latency_ms__isnull=False).values_list("latency_ms", flat=True)
    )
    ratings = feedback.aggregate(up=Count("id", filter=Q(rating=1)), down=Count("id", filter=Q(rating=-1)))
    rated = ratings["up"] + ratings["down"]
    # A question is unanswered when the answer right after it said "nothing relevant".
    unanswered_ids = messages.filter(role=Message.Role.ASSISTANT, no_answer=True).values_list("conversation_id", "id")
    questions = Counter()
    for conversation_id, answer_id in unanswered_ids:
        question = (
            Message.objects.filter(conversation_id=conversation_id, role=Message.Role.USER, id__lt=answer_id)
            .order_by("-id")
            .values_list("text", flat=True)
            .first()
        )
        if question:
            questions[" ".join(question.lower().split())] += 1
    return {
        "conversations": conversations.count(),
        "messages": messages.count(),
        "questions": messages.filter(role=Message.Role.USER).count(),
        "answers": len(latencies),
        "refused": messages.filter(refused=True).count(),
        "no_answer": messages.filter(no_answer=True).count(),
        "feedback": {
            "up": ratings["up"],
            "down": ratings["down"],
            "ratio": round(ratings["up"] / rated, 3) if rated else None,
        },
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "top_unanswered": [{"question": text, "count": count} for text, count in questions.most_common(TOP_UNANSWERED)],
    }


def chat_analytics_for_user(*, user) -> dict:
    return chat_analytics(
        conversations=Conversation.objects.filter(owner=user),
        messages=Message.objects.filter(conversation__owner=user),
        feedback=Feedback.objects.filter(user=user),
    )


def chat_analytics_platform() -> dict:
    result = chat_analytics(
        conversations=Conversation.objects.all(), messages=Message.objects.all(), feedback=Feedback.objects.all()
    )
    result["users"] = Conversation.objects.values("owner").distinct().count()
    return result
