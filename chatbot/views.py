"""Chat pages: the chat itself (with the readiness of each knowledge source), and for staff the knowledge base
(documents, page by page, and each source's indexing progress) page.

The site's error handlers answer JSON under /chat/ (the JSON routes live there), so the staff pages here refuse with
the site's 403 page themselves (accounts.permissions.staff_page_refusal) instead of raising PermissionDenied.
"""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.audit import audit_record
from accounts.permissions import staff_page_refusal
from deepmed.exceptions import ApplicationError

from . import selectors, services
from .api.views import knowledge_document_create_from
from .forms import KnowledgeDocumentForm
from .models import KnowledgeDocument

SIDEBAR_CONVERSATIONS = 30
KNOWLEDGE_PAGE_SIZE = 50


def staff_page(view):
    """Sign in first; then the view for staff with their second factor, the refusal of a staff page otherwise."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        refusal = staff_page_refusal(request)
        return refusal if refusal is not None else view(request, *args, **kwargs)

    return wrapper


def _sources_context(user) -> dict:
    sources = selectors.knowledge_source_progress(user=user)
    return {"sources": sources, "sources_loading": any(source["waiting"] for source in sources)}


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
        "attach_max_mb": settings.CHAT_ATTACHMENT_MAX_MB,
        **_sources_context(request.user),
    }
    return render(request, "chatbot/chat.html", context)


@login_required
def sources_status(request):
    """The chat page's banner alone: which sources are ready and how far the others are (htmx polls it)."""
    return render(request, "chatbot/_sources_status.html", _sources_context(request.user))


def _knowledge_context(request) -> dict:
    page = Paginator(selectors.knowledge_document_list(), KNOWLEDGE_PAGE_SIZE).get_page(request.GET.get("page"))
    sources = selectors.knowledge_source_progress()
    busy = any(source["waiting"] for source in sources) or any(
        document.status in (KnowledgeDocument.Status.QUEUED, KnowledgeDocument.Status.INGESTING) for document in page
    )
    return {
        "documents": page.object_list,
        "page": page,
        "sources": sources,
        "counts": selectors.knowledge_base_counts(),
        "busy": busy,
    }


@staff_page
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
    return render(request, "chatbot/knowledge.html", {**_knowledge_context(request), "form": form})


@staff_page
def knowledge_rows(request):
    """The progress and documents tables alone: htmx polls them while something is being ingested."""
    return render(request, "chatbot/_knowledge_rows.html", _knowledge_context(request))


@staff_page
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
