"""Chat pages: the chat itself, and for staff the knowledge base (documents, ingestion progress) page."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.audit import audit_record
from accounts.permissions import staff_required
from deepmed.exceptions import ApplicationError

from . import selectors, services
from .api.views import knowledge_document_create_from
from .forms import KnowledgeDocumentForm
from .models import KnowledgeDocument

SIDEBAR_CONVERSATIONS = 30


@login_required
def chat_page(request):
    conversations = list(selectors.conversation_list_for_user(user=request.user)[:SIDEBAR_CONVERSATIONS])
    current = None
    requested = request.GET.get("c")
    if requested:
        current = next((c for c in conversations if str(c.pk) == requested), None)
        if current is None:
            # Older than the sidebar shows, or not this user's (then: not found, as everywhere).
            try:
                current = selectors.conversation_get_for_user(user=request.user, conversation_id=requested)
            except ApplicationError as exc:
                raise Http404(exc.message) from exc
    preference = services.preference_get(user=request.user)
    context = {
        "conversations": conversations,
        "current": current,
        "show_sources": preference.show_sources,
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }
    return render(request, "chatbot/chat.html", context)


def _knowledge_context() -> dict:
    documents = list(selectors.knowledge_document_list()[:500])
    busy = any(d.status in (KnowledgeDocument.Status.QUEUED, KnowledgeDocument.Status.INGESTING) for d in documents)
    return {"documents": documents, "counts": selectors.knowledge_base_counts(), "busy": busy}


@staff_required
def knowledge_page(request):
    form = KnowledgeDocumentForm()
    if request.method == "POST":
        form = KnowledgeDocumentForm(request.POST, request.FILES)
        if form.is_valid():
            data = dict(form.cleaned_data)
            data["group"] = data["group"].pk if data.get("group") else None
            try:
                document = knowledge_document_create_from(request=request, data=data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"“{document.title}” was added; it is being indexed.")
                return redirect("chat-knowledge")
    return render(request, "chatbot/knowledge.html", {**_knowledge_context(), "form": form})


@staff_required
def knowledge_rows(request):
    """The documents table alone: htmx polls it while something is being ingested."""
    return render(request, "chatbot/_knowledge_rows.html", _knowledge_context())


@staff_required
@require_POST
def knowledge_delete(request, document_id: int):
    try:
        document = selectors.knowledge_document_get(document_id=document_id)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc
    audit_record(action="chatbot.document_deleted", request=request, target=document)
    services.knowledge_document_delete(document=document)
    messages.success(request, f"“{document.title}” and its passages were removed.")
    return redirect("chat-knowledge")
