"""Chatbot writes: knowledge-base ingestion, answering questions, conversations, feedback, preferences, import.

The RAG pieces that need no Django (chunking, embedding, BM25, fusion, safety, generators) live in chatbot/rag/;
this module wires them to the database and to the settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deepmed.exceptions import ApplicationError, NotFound
from deepmed.jobs import send_job
from deepmed.metrics import observe_chat_response

from .models import (
    ChatPreference,
    Conversation,
    Feedback,
    KnowledgeChunk,
    KnowledgeDocument,
    LexicalPosting,
    Message,
)
from .rag.fusion import DEFAULT_CANDIDATES
from .rag.generation import finish_streamed
from .vectorstore import NumpyStore, get_vector_store, knowledge_base_alias, vector_to_bytes

logger = logging.getLogger(__name__)

EMBED_BATCH_SIZE = 64
# Documents written per transaction by the bulk loader: big enough to be fast, small enough to keep locks short.
WRITE_BATCH_DOCUMENTS = 200
POSTING_BATCH_SIZE = 2000
MAX_TERM_CHARS = 64
EXCERPT_CHARS = 400
# The posting fields in the order _write_chunks counts them: Chunk.search_text, then Chunk.title_text.
LEXICAL_FIELDS = (LexicalPosting.Field.BODY, LexicalPosting.Field.TITLE)
# Candidates each retriever contributes to the fusion (the depth the RAG core was evaluated with); the answer keeps
# CHAT_TOP_K of them.
CANDIDATES_PER_RETRIEVER = DEFAULT_CANDIDATES

NOTHING_RELEVANT = (
    "I could not find anything relevant to this question in the DeepMed knowledge base, so I will not guess. "
    "Try rephrasing it, or ask about using DeepMed, an ICD-10-CM code or a clinical feature (HPO term)."
)


# --- embedding model (one per process) ------------------------------------------------------------------------------


def embedder_get():
    """The process-wide sentence-transformers embedder from EMBEDDING_MODEL_PATH (or the packaged MiniLM)."""
    from .rag.embedding import get_embedder

    return get_embedder(settings.EMBEDDING_MODEL_PATH or None)


def content_sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


# --- knowledge base: documents ------------------------------------------------------------------------------------


def _document_text(content: str, fmt: str) -> tuple[str, str]:
    """(text, chunker format): HTML becomes Markdown-like text first, so its headings still split chunks."""
    from .rag.chunking import html_to_text

    if fmt == KnowledgeDocument.Format.HTML:
        return html_to_text(content), "markdown"
    return content, fmt


def document_text_from_upload(
    *, data: bytes, filename: str, max_mb: int | None = None, allow_html: bool = True
) -> tuple[str, str]:
    """(content, format) of an uploaded file, judged from its bytes (a PDF signature) and then its text.

    `max_mb` defaults to CHAT_MAX_DOCUMENT_MB (staff uploads); without `allow_html` only PDF, Markdown and plain
    text are accepted (documents users attach to a conversation).
    """
    from .rag.chunking import DocumentParseError, NoTextInDocument, pdf_to_text

    setting = "CHAT_MAX_DOCUMENT_MB" if max_mb is None else "CHAT_ATTACHMENT_MAX_MB"
    max_mb = settings.CHAT_MAX_DOCUMENT_MB if max_mb is None else max_mb
    if len(data) > max_mb * 1024 * 1024:
        raise ApplicationError(
            f"The file is larger than {max_mb} MB ({setting}): split it or upload a shorter version.",
            code="file_too_large",
        )
    if data.startswith(b"%PDF-"):
        try:
            return pdf_to_text(data), KnowledgeDocument.Format.TEXT
        except NoTextInDocument as exc:
            raise ApplicationError(str(exc), code="no_text") from exc
        except DocumentParseError as exc:
            raise ApplicationError(str(exc), code="unreadable_pdf") from exc
    kinds = "text (Markdown, HTML, plain text) nor a PDF" if allow_html else "a PDF, Markdown nor plain text"
    if b"\x00" in data[:4096]:
        raise ApplicationError(f"The file is neither {kinds}: upload one of those.", code="unsupported_file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApplicationError(
            "The file is not UTF-8 text: save it as UTF-8 and upload it again.", code="encoding"
        ) from exc
    lowered = text.lstrip()[:2000].lower()
    name = filename.lower()
    if name.endswith((".html", ".htm")) or lowered.startswith(("<!doctype html", "<html")):
        if not allow_html:
            raise ApplicationError(f"The file is neither {kinds}: upload one of those.", code="unsupported_file")
        return text, KnowledgeDocument.Format.HTML
    if name.endswith((".md", ".markdown")):
        return text, KnowledgeDocument.Format.MARKDOWN
    return text, KnowledgeDocument.Format.TEXT


INGEST_NOT_QUEUED = (
    "Not indexed: the job queue was unavailable when this document was saved, so its ingestion never started. "
    "Its text is kept; delete it and add it again in a minute."
)


def _ingest_after_commit(*, document: KnowledgeDocument, alias: str) -> None:
    """Queue the document's ingestion once its row is committed; a broker outage fails the row and answers 503."""
    from . import tasks

    def refused(_message: str) -> None:
        # Left "queued", the staff page would poll it for ever; failed, it says what to do. Old chunks stay served.
        KnowledgeDocument.objects.using(alias).filter(pk=document.pk, status=KnowledgeDocument.Status.QUEUED).update(
            status=KnowledgeDocument.Status.FAILED, error=INGEST_NOT_QUEUED, updated_at=timezone.now()
        )

    transaction.on_commit(
        lambda: send_job(tasks.knowledge_document_ingest, args=[document.pk], on_refused=refused), using=alias
    )


def knowledge_document_create(
    *,
    user,
    title: str,
    content: str,
    fmt: str,
    source: str = "Uploaded",
    licence: str = "",
    version: str = "",
    language: str = "en",
    code: str = "",
    group=None,
) -> KnowledgeDocument:
    """A staff-added document, queued for ingestion on the chatbot queue once the row is committed."""
    if not content.strip():
        raise ApplicationError("The document is empty: paste some text or choose a file.", code="empty_document")
    alias = knowledge_base_alias()
    with transaction.atomic(using=alias):
        document = KnowledgeDocument.objects.using(alias).create(
            key=f"pending:{timezone.now().timestamp()}:{threading.get_ident()}",
            title=title.strip()[:300],
            source=source.strip()[:200] or "Uploaded",
            code=code.strip()[:100],
            version=version.strip()[:100],
            licence=licence.strip()[:200],
            language=language.strip()[:16] or "en",
            format=fmt,
            content=content,
            content_sha256=content_sha256(content),
            group_id=group.pk if group is not None else None,
            created_by_id=user.pk if user is not None else None,
        )
        # The key needs the primary key, which exists only after the insert.
        document.key = f"upload:{document.pk}"
        document.save(using=alias, update_fields=["key"])
        _ingest_after_commit(document=document, alias=alias)
    return document


def knowledge_document_update_content(*, document: KnowledgeDocument, content: str, fmt: str) -> KnowledgeDocument:
    """New text for a document: re-ingested (its chunks replaced atomically) when the text really changed."""
    digest = content_sha256(content)
    if digest == document.content_sha256 and document.status == KnowledgeDocument.Status.READY:
        return document
    alias = knowledge_base_alias()
    with transaction.atomic(using=alias):
        document.content = content
        document.format = fmt
        document.content_sha256 = digest
        document.status = KnowledgeDocument.Status.QUEUED
        document.progress = 0.0
        document.error = ""
        document.save(using=alias)
        _ingest_after_commit(document=document, alias=alias)
    return document


def knowledge_document_delete(*, document: KnowledgeDocument) -> None:
    """Removes the document, its chunks and their postings (cascade) in one transaction."""
    alias = knowledge_base_alias()
    with transaction.atomic(using=alias):
        KnowledgeChunk.objects.using(alias).filter(document_id=document.pk).delete()
        document.delete(using=alias)
    NumpyStore.invalidate()


# --- documents attached to a conversation ------------------------------------------------------------------------

ATTACHMENT_SOURCE = "Your documents"
MAX_ATTACHMENTS_PER_CONVERSATION = 10


def conversation_document_attach(*, user, conversation: Conversation, data: bytes, filename: str) -> KnowledgeDocument:
    """A PDF, Markdown or text file attached by `user` to their `conversation`: private to them and to it, its
    personal data masked before anything is stored, indexed on the chatbot queue like a shared document.

    Refused: another user's conversation (not found), an ended one, a file over CHAT_ATTACHMENT_MAX_MB, another
    type of file, a scan without text, an empty file, more than MAX_ATTACHMENTS_PER_CONVERSATION documents.
    """
    from .rag.safety import deidentify_text, mask_personal_data

    if conversation.owner_id != user.pk:
        raise NotFound("No conversation with this id belongs to you.", code="conversation_not_found")
    if conversation.ended_at is not None:
        raise ApplicationError(
            "This conversation has ended: start a new one to attach documents.",
            code="conversation_ended",
            status_code=409,
        )
    alias = knowledge_base_alias()
    attached = KnowledgeDocument.objects.using(alias).filter(owner_id=user.pk, conversation_id=conversation.pk)
    if attached.count() >= MAX_ATTACHMENTS_PER_CONVERSATION:
        raise ApplicationError(
            f"A conversation holds at most {MAX_ATTACHMENTS_PER_CONVERSATION} documents: remove one first, or start a "
            "new conversation.",
            code="too_many_documents",
        )
    content, fmt = document_text_from_upload(
        data=data, filename=filename, max_mb=settings.CHAT_ATTACHMENT_MAX_MB, allow_html=False
    )
    content = deidentify_text(content)
    if not content.strip():
        raise ApplicationError("The document is empty: there is no text to answer from.", code="empty_document")
    title = mask_personal_data(" ".join((filename or "").replace("\\", "/").rsplit("/", 1)[-1].split()))[:300]
    with transaction.atomic(using=alias):
        document = KnowledgeDocument.objects.using(alias).create(
            key=f"pending:{timezone.now().timestamp()}:{threading.get_ident()}",
            title=title or "Attached document",
            source=ATTACHMENT_SOURCE,
            format=fmt,
            content=content,
            content_sha256=content_sha256(content),
            owner_id=user.pk,
            conversation_id=conversation.pk,
            created_by_id=user.pk,
        )
        document.key = f"attachment:{document.pk}"
        document.save(using=alias, update_fields=["key"])
        _ingest_after_commit(document=document, alias=alias)
    return document


def conversation_documents_delete(*, conversation_ids: Sequence[int]) -> int:
    """Removes the documents attached to these conversations, with their chunks (a conversation or its owner is
    being deleted: their private documents must not outlive them). Returns how many went."""
    alias = knowledge_base_alias()
    documents = KnowledgeDocument.objects.using(alias).filter(conversation_id__in=list(conversation_ids))
    with transaction.atomic(using=alias):
        ids = list(documents.values_list("id", flat=True))
        KnowledgeChunk.objects.using(alias).filter(document_id__in=ids).delete()
        KnowledgeDocument.objects.using(alias).filter(id__in=ids).delete()
    return len(ids)


@dataclass
class _Pending:
    """A document being indexed: its chunks and, once embedded, their vectors."""

    document: KnowledgeDocument
    chunks: list = field(default_factory=list)
    vectors: np.ndarray | None = None


def _chunks_for(document: KnowledgeDocument) -> list:
    from .rag.chunking import chunk_text

    text, fmt = _document_text(document.content, document.format)
    return chunk_text(
        text,
        title=document.title,
        source=document.source,
        code=document.code or None,
        doc_key=document.key,
        max_chars=settings.CHAT_CHUNK_CHARS,
        overlap_chars=settings.CHAT_CHUNK_OVERLAP,
        fmt=fmt,
        metadata={"version": document.version, "licence": document.licence} if document.version else None,
    )


def _embed(texts: Sequence[str], *, embedder, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Embeddings in batches, reporting the number done after each batch (progress bars, logs)."""
    parts = []
    for start in range(0, len(texts), EMBED_BATCH_SIZE):
        parts.append(np.asarray(embedder.encode(list(texts[start : start + EMBED_BATCH_SIZE])), dtype=np.float32))
        if on_batch is not None:
            on_batch(min(start + EMBED_BATCH_SIZE, len(texts)))
    if not parts:
        return np.empty((0, embedder.dimension), dtype=np.float32)
    return np.vstack(parts)


def _term_counts(text: str) -> Counter:
    from .rag.lexical import tokenize

    # Terms are capped to the column width; a truncated term still matches the same truncated query term.
    return Counter(term[:MAX_TERM_CHARS] for term in tokenize(text))


def _write_chunks(pending: Sequence[_Pending], *, alias: str) -> None:
    """Replaces the chunks of these documents by the new ones; all or nothing (the old chunks stay on failure)."""
    store = get_vector_store()
    now = timezone.now()
    with transaction.atomic(using=alias):
        KnowledgeChunk.objects.using(alias).filter(document_id__in=[item.document.pk for item in pending]).delete()
        rows = []
        term_counts = []
        for item in pending:
            for chunk in item.chunks:
                counts = _term_counts(chunk.search_text)
                title_counts = _term_counts(chunk.title_text)
                term_counts.append((counts, title_counts))
                rows.append(
                    KnowledgeChunk(
                        document_id=item.document.pk,
                        key=chunk.key[:191],
                        ordinal=chunk.ordinal,
                        text=chunk.text,
                        heading=(chunk.heading or "")[:300],
                        code=(chunk.code or "")[:100],
                        metadata=chunk.metadata,
                        n_terms=sum(counts.values()),
                        n_title_terms=sum(title_counts.values()),
                    )
                )
        vectors = [vector for item in pending for vector in item.vectors] if rows else []
        for row, vector in zip(rows, vectors, strict=True):
            row.embedding_f32 = vector_to_bytes(vector)
        KnowledgeChunk.objects.using(alias).bulk_create(rows, batch_size=500)
        # MariaDB does not hand back the new ids from a bulk insert: read them by key.
        ids_by_key = dict(
            KnowledgeChunk.objects.using(alias).filter(key__in=[row.key for row in rows]).values_list("key", "id")
        )
        chunk_ids = [ids_by_key[row.key] for row in rows]
        # Two BM25 fields per chunk (rag.fusion fuses both with the dense ranking): the body and the title field.
        postings = [
            LexicalPosting(term=term, chunk_id=chunk_id, field=field, tf=tf)
            for chunk_id, field_counts in zip(chunk_ids, term_counts, strict=True)
            for field, counts in zip(LEXICAL_FIELDS, field_counts, strict=True)
            for term, tf in counts.items()
        ]
        LexicalPosting.objects.using(alias).bulk_create(postings, batch_size=POSTING_BATCH_SIZE)
        if rows:
            store.store(chunk_ids, np.vstack(vectors))
        for item in pending:
            KnowledgeDocument.objects.using(alias).filter(pk=item.document.pk).update(
                status=KnowledgeDocument.Status.READY,
                progress=1.0,
                error="",
                n_chunks=len(item.chunks),
                ingested_at=now,
                updated_at=now,
            )
    NumpyStore.invalidate()


def knowledge_document_ingest(*, document_id: int, embedder=None) -> KnowledgeDocument:
    """Chunk, embed and store one document, recording status and progress on its row.

    A failure is recorded on the row (status failed, the reason in `error`) and leaves the previous chunks in
    place, so a document that was searchable stays searchable.
    """
    alias = knowledge_base_alias()
    documents = KnowledgeDocument.objects.using(alias)
    try:
        document = documents.get(pk=document_id)
    except KnowledgeDocument.DoesNotExist as exc:
        raise NotFound("That knowledge-base document no longer exists.") from exc
    documents.filter(pk=document.pk).update(
        status=KnowledgeDocument.Status.INGESTING, progress=0.0, error="", updated_at=timezone.now()
    )
    try:
        chunks = _chunks_for(document)
        if not chunks:
            raise ApplicationError("The document contains no text to index.", code="empty_document")
        embedder = embedder or embedder_get()

        def report(done: int) -> None:
            # Embedding is most of the work; writing the rows is the last 10 %.
            documents.filter(pk=document.pk).update(progress=round(0.9 * done / len(chunks), 3))

        vectors = _embed([chunk.search_text for chunk in chunks], embedder=embedder, on_batch=report)
        _write_chunks([_Pending(document, chunks, vectors)], alias=alias)
    except Exception as exc:
        logger.exception("ingestion of knowledge document %s failed", document.pk)
        reason = exc.message if isinstance(exc, ApplicationError) else f"{exc.__class__.__name__}: {exc}"
        documents.filter(pk=document.pk).update(
            status=KnowledgeDocument.Status.FAILED, error=reason[:2000], updated_at=timezone.now()
        )
    document.refresh_from_db(using=alias)
    return document


@dataclass
class LoadReport:
    """What a knowledge-base load did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    seconds: float = 0.0


def knowledge_base_load(
    *,
    sources: Iterable,
    embedder=None,
    on_progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Loads source documents (rag.sources.SourceDocument-like) idempotently: unchanged ones (same hash) are skipped.

    Chunks of many documents are embedded together (the model is fastest on full batches) and written in
    transactions of WRITE_BATCH_DOCUMENTS documents.
    """
    started = time.perf_counter()
    alias = knowledge_base_alias()
    documents = KnowledgeDocument.objects.using(alias)
    report = LoadReport()
    # One document per key: a source listing a key twice would otherwise be indexed twice in one batch.
    unique: dict[str, object] = {}
    for source in sources:
        if source.key in unique:
            logger.warning("knowledge base: duplicate source key %s skipped", source.key)
            continue
        unique[source.key] = source
    sources = list(unique.values())
    existing = {
        key: (pk, digest, status)
        for key, pk, digest, status in documents.filter(key__in=[source.key for source in sources]).values_list(
            "key", "id", "content_sha256", "status"
        )
    }
    keys: list[str] = []
    new_rows: list[KnowledgeDocument] = []
    now = timezone.now()
    for source in sources:
        fmt = getattr(source, "fmt", None) or KnowledgeDocument.Format.MARKDOWN
        digest = content_sha256(source.text, source.title, source.code or "", source.version or "", fmt)
        found = existing.get(source.key)
        if found and found[1] == digest and found[2] == KnowledgeDocument.Status.READY:
            report.unchanged += 1
            continue
        values = {
            "title": source.title[:300],
            "source": source.source[:200],
            "code": (source.code or "")[:100],
            "version": (source.version or "")[:100],
            "licence": (source.licence or "")[:200],
            "language": (source.language or "en")[:16],
            "url": (source.url or "")[:500],
            "format": fmt,
            "content": source.text,
            "content_sha256": digest,
            "status": KnowledgeDocument.Status.INGESTING,
            "progress": 0.0,
            "error": "",
        }
        if found:
            documents.filter(pk=found[0]).update(**values, updated_at=now)
            report.updated += 1
        else:
            new_rows.append(KnowledgeDocument(key=source.key, **values))
            report.created += 1
        keys.append(source.key)
    # Every row exists, marked ingesting, before the first embedding starts: the chat page and the staff page can
    # then say how far each source is from the start of a first load, not only once its turn comes.
    documents.bulk_create(new_rows, batch_size=500)
    if not keys:
        report.seconds = time.perf_counter() - started
        return report
    for start in range(0, len(keys), WRITE_BATCH_DOCUMENTS):
        batch_keys = keys[start : start + WRITE_BATCH_DOCUMENTS]
        try:
            embedder = embedder or embedder_get()
            by_key = {document.key: document for document in documents.filter(key__in=batch_keys)}
            batch = [_Pending(by_key[key], _chunks_for(by_key[key])) for key in batch_keys]
            texts = [chunk.search_text for item in batch for chunk in item.chunks]
            vectors = _embed(texts, embedder=embedder)
            offset = 0
            for item in batch:
                item.vectors = vectors[offset : offset + len(item.chunks)]
                offset += len(item.chunks)
            _write_chunks(batch, alias=alias)
        except Exception as exc:
            # This batch and the ones after it were never indexed: say so on their rows instead of leaving them
            # "ingesting" for ever. Documents already written stay ready; a re-run picks up the failed ones.
            reason = exc.message if isinstance(exc, ApplicationError) else f"{exc.__class__.__name__}: {exc}"
            for failed in range(start, len(keys), WRITE_BATCH_DOCUMENTS):
                documents.filter(key__in=keys[failed : failed + WRITE_BATCH_DOCUMENTS]).update(
                    status=KnowledgeDocument.Status.FAILED, error=reason[:2000], updated_at=timezone.now()
                )
            raise
        report.chunks += len(texts)
        if on_progress is not None:
            on_progress(f"{min(start + WRITE_BATCH_DOCUMENTS, len(keys))}/{len(keys)} documents indexed")
    report.seconds = time.perf_counter() - started
    return report


# --- retrieval ----------------------------------------------------------------------------------------------------


@dataclass
class RetrievedPassage:
    """A chunk retrieved for a question, with its cosine similarity to the question (the `score` users see)."""

    chunk_id: int
    key: str
    document_id: int
    title: str
    source: str
    code: str
    heading: str
    text: str
    score: float
    # Which heading-delimited section of its document the chunk comes from (rag.chunking.section_text).
    section_index: int | None = None


def reader_group_ids(user) -> list[int]:
    """The groups whose restricted documents this user may read (documents without a group: everyone)."""
    if user is None or not user.is_authenticated:
        return []
    return list(user.groups.values_list("id", flat=True))


def _readable_documents(prefix: str, attached_to: Conversation | None) -> Q:
    """The shared documents, and the documents attached to `attached_to` by its owner: what a reader's search may
    touch (group restrictions apart). `prefix` leads from the queried model to KnowledgeDocument."""
    readable = Q(**{f"{prefix}owner_id__isnull": True})
    if attached_to is not None:
        readable |= Q(**{f"{prefix}owner_id": attached_to.owner_id, f"{prefix}conversation_id": attached_to.pk})
    return readable


def lexical_search(
    *,
    query: str,
    group_ids: Sequence[int],
    limit: int,
    field: str = LexicalPosting.Field.BODY,
    attached_to: Conversation | None = None,
) -> list[tuple[int, float]]:
    """BM25 over the postings of one field stored at ingestion: (chunk id, score) pairs, best first.

    `field` is body (the chunk's search_text) or title (its title and heading: Chunk.title_text). Document
    frequencies come from the shared collection (every posting of the query terms) and the documents attached to
    `attached_to`; no other user's attachment is read at all. Chunks of group documents the reader may not see are
    dropped after scoring, so a restricted document never changes what others see except through idf.
    """
    from django.db.models import Avg, Count

    from .rag.lexical import BM25Scorer, tokenize

    alias = knowledge_base_alias()
    terms = list(dict.fromkeys(term[:MAX_TERM_CHARS] for term in tokenize(query)))
    if not terms:
        return []
    length_column = "chunk__n_title_terms" if field == LexicalPosting.Field.TITLE else "chunk__n_terms"
    rows = (
        LexicalPosting.objects.using(alias)
        .filter(_readable_documents("chunk__document__", attached_to), field=field, term__in=terms)
        .values_list("term", "chunk_id", "tf", length_column, "chunk__document__group_id")
    )
    postings: dict[str, list[tuple[int, int]]] = {}
    lengths: dict[int, int] = {}
    hidden: set[int] = set()
    allowed = set(group_ids)
    for term, chunk_id, tf, n_terms, group_id in rows:
        postings.setdefault(term, []).append((chunk_id, tf))
        lengths[chunk_id] = n_terms
        if group_id is not None and group_id not in allowed:
            hidden.add(chunk_id)
    if not postings:
        return []
    totals = (
        KnowledgeChunk.objects.using(alias)
        .filter(_readable_documents("document__", attached_to))
        .aggregate(n=Count("id"), avg=Avg(length_column.removeprefix("chunk__")))
    )
    ranked = BM25Scorer().score(terms, postings, lengths, totals["n"] or 0, float(totals["avg"] or 1.0))
    return [(chunk_id, score) for chunk_id, score in ranked if chunk_id not in hidden][:limit]


def attached_chunk_ids(*, conversation: Conversation | None) -> list[int]:
    """The chunks of the ready documents the conversation's owner attached to it."""
    if conversation is None:
        return []
    return list(
        KnowledgeChunk.objects.using(knowledge_base_alias())
        .filter(
            document__owner_id=conversation.owner_id,
            document__conversation_id=conversation.pk,
            document__status=KnowledgeDocument.Status.READY,
        )
        .values_list("id", flat=True)
    )


def knowledge_search(
    *, user, query: str, top_k: int | None = None, embedder=None, conversation: Conversation | None = None
) -> list[RetrievedPassage]:
    """Hybrid retrieval: dense (vector store), BM25 over the chunk body and BM25 over its title field (stored
    postings), fused by reciprocal rank with the weights rag.fusion was tuned with.

    With `conversation` (one of `user`'s own), the documents attached to it join the shared knowledge base: their
    chunks are compared with the question directly (they are never in the vector stores) and their postings join
    the lexical search, so they rank beside the shared passages by the same rules.

    The relevance floor is compared with the best dense cosine of the question (rag.fusion explains why): below
    it the list is empty and the caller says it found nothing relevant. `score` is each passage's cosine.
    """
    from .rag.fusion import fuse_dense_and_lexical

    top_k = top_k or settings.CHAT_TOP_K
    if conversation is not None and conversation.owner_id != getattr(user, "pk", None):
        conversation = None  # only the owner's own attachments ever join a search
    group_ids = reader_group_ids(user)
    store = get_vector_store()
    embedder = embedder or embedder_get()
    query_vector = np.asarray(embedder.encode([query]), dtype=np.float32)[0]
    dense = store.search(query_vector, k=CANDIDATES_PER_RETRIEVER, group_ids=group_ids)
    attached = attached_chunk_ids(conversation=conversation)
    if attached:
        dense = sorted(
            [*dense, *store.similarities(query_vector, attached).items()], key=lambda item: (-item[1], item[0])
        )[:CANDIDATES_PER_RETRIEVER]
    lexical = lexical_search(query=query, group_ids=group_ids, limit=CANDIDATES_PER_RETRIEVER, attached_to=conversation)
    title = lexical_search(
        query=query,
        group_ids=group_ids,
        limit=CANDIDATES_PER_RETRIEVER,
        field=LexicalPosting.Field.TITLE,
        attached_to=conversation,
    )
    result = fuse_dense_and_lexical(dense, lexical, title=title, k=top_k, relevance_floor=settings.CHAT_RELEVANCE_FLOOR)
    if not result.hits:
        return []
    chosen = [hit.id for hit in result.hits]
    similarity = {hit.id: hit.dense_score for hit in result.hits if hit.dense_score is not None}
    similarity.update(store.similarities(query_vector, [chunk_id for chunk_id in chosen if chunk_id not in similarity]))
    alias = knowledge_base_alias()
    chunks = {
        chunk.pk: chunk
        for chunk in KnowledgeChunk.objects.using(alias)
        .select_related("document")
        .defer("document__content", "embedding_f32")
        .filter(pk__in=chosen)
    }
    return [
        RetrievedPassage(
            chunk_id=chunk_id,
            key=chunks[chunk_id].key,
            document_id=chunks[chunk_id].document_id,
            title=chunks[chunk_id].document.title,
            source=chunks[chunk_id].document.source,
            code=chunks[chunk_id].code or chunks[chunk_id].document.code,
            heading=chunks[chunk_id].heading,
            text=chunks[chunk_id].text,
            score=round(similarity.get(chunk_id, 0.0), 4),
            section_index=(chunks[chunk_id].metadata or {}).get("section"),
        )
        for chunk_id in chosen
        if chunk_id in chunks
    ]


# --- conversations ------------------------------------------------------------------------------------------------


def preference_get(*, user) -> ChatPreference:
    preference, _ = ChatPreference.objects.get_or_create(user=user)
    return preference


def preference_update(*, user, answer_length: str | None = None, backend: str | None = None, show_sources=None):
    """Saves the user's chat settings; a backend outside CHAT_SELECTABLE_BACKENDS is refused."""
    preference = preference_get(user=user)
    if answer_length is not None:
        preference.answer_length = answer_length
    if backend is not None:
        if backend not in settings.CHAT_SELECTABLE_BACKENDS:
            allowed = ", ".join(settings.CHAT_SELECTABLE_BACKENDS)
            raise ApplicationError(
                f"The generator {backend!r} is not offered on this installation; choose one of: {allowed}.",
                code="backend_not_allowed",
            )
        preference.backend = backend
    if show_sources is not None:
        preference.show_sources = bool(show_sources)
    preference.save()
    return preference


def _config_snapshot(preference: ChatPreference) -> dict:
    from .generation import generator_backend_name

    return {
        "answer_length": preference.answer_length,
        "backend": generator_backend_name(preference.backend),
        "show_sources": preference.show_sources,
        "top_k": settings.CHAT_TOP_K,
        "relevance_floor": settings.CHAT_RELEVANCE_FLOOR,
    }


def conversation_start(*, user, title: str = "") -> Conversation:
    preference = preference_get(user=user)
    return Conversation.objects.create(owner=user, title=title[:200], config=_config_snapshot(preference))


def conversation_end(*, conversation: Conversation) -> Conversation:
    if conversation.ended_at is None:
        conversation.ended_at = timezone.now()
        conversation.save(update_fields=["ended_at"])
    return conversation


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1].rsplit(" ", 1)[0] + "…"


def _history_window(conversation: Conversation) -> list[dict]:
    """The last CHAT_HISTORY_TURNS question/answer pairs, oldest first, for the generator (refusals left out)."""
    turns = settings.CHAT_HISTORY_TURNS * 2
    if turns == 0:
        return []
    recent = list(
        conversation.messages.filter(refused=False).order_by("-created_at", "-id").values_list("role", "text")[:turns]
    )
    return [{"role": role, "content": text} for role, text in reversed(recent)]


def passages_for_named_codes(question: str, passages: list[RetrievedPassage]) -> list[RetrievedPassage]:
    """Only the passages about a code the question names ("What does E11 cover?"), when there are any; else all.

    Retrieval ranks the named code first, but the other top-k passages of such a question are neighbours that merely
    look alike (other short ICD titles, "ICD-10" in every title), and quoting them next to E11 reads as if they
    answered the question. A question naming no code, or a code the knowledge base lacks, keeps every passage.
    """
    from .rag.lexical import tokenize

    terms = set(tokenize(question))
    named = [passage for passage in passages if passage.code and passage.code.split()[-1].lower() in terms]
    return named or passages


def _section_texts(passages: Sequence[RetrievedPassage]) -> dict[int, str]:
    """chunk id → the whole section of its document the chunk sits in, for passages from documents with sections
    (the guide, uploaded or attached files); terminology entries (ICD-10-CM, HPO) are one short section anyway."""
    from .rag.answering import CODED_SOURCES
    from .rag.chunking import section_text

    wanted = [p for p in passages if p.section_index is not None and p.source not in CODED_SOURCES]
    if not wanted:
        return {}
    documents = {
        pk: (content, fmt)
        for pk, content, fmt in KnowledgeDocument.objects.using(knowledge_base_alias())
        .filter(pk__in={p.document_id for p in wanted})
        .values_list("pk", "content", "format")
    }
    texts = {}
    for passage in wanted:
        if passage.document_id in documents:
            text, fmt = _document_text(*documents[passage.document_id])
            texts[passage.chunk_id] = section_text(text, fmt=fmt, index=passage.section_index)
    return texts


def _source_entry(passages: Sequence[RetrievedPassage]) -> dict:
    """One source of an answer: a document, with the excerpt of its first cited passage and its best score."""
    first = passages[0]
    return {
        "document_id": first.document_id,
        "title": first.title,
        "excerpt": _excerpt(first.text),
        "score": max(passage.score for passage in passages),
        "code": first.code,
        "chunk_key": first.key,
    }


@dataclass
class ShapedAnswer:
    """What a generator made of the passages, numbered by document in order of use."""

    text: str
    sources: list[dict]
    see_also: list[dict]
    backend: str
    fell_back: bool
    shape: str


def _answer_chunks(*, question: str, passages: Sequence[RetrievedPassage]) -> list:
    """The passages as a generator sees them, with each passage's whole section for a how-to question."""
    from .rag.answering import QuestionKind, classify_question
    from .rag.generation import RetrievedChunk

    sections = _section_texts(passages) if classify_question(question) is QuestionKind.HOW_TO else {}
    return [
        RetrievedChunk(
            key=passage.key,
            text=passage.text,
            title=passage.title,
            source=passage.source,
            code=passage.code,
            score=passage.score,
            document=str(passage.document_id),
            heading=passage.heading,
            section=sections.get(passage.chunk_id, ""),
        )
        for passage in passages
    ]


def _shaped(answer, *, chunks: list, passages: Sequence[RetrievedPassage]) -> ShapedAnswer:
    from .rag.answering import cite_in_order

    cited = cite_in_order(answer.text, chunks)
    return ShapedAnswer(
        text=cited.text,
        sources=[_source_entry([passages[position] for position in positions]) for positions in cited.cited],
        see_also=[_source_entry([passages[position]]) for position in cited.see_also],
        backend=answer.backend,
        fell_back=bool(answer.fell_back),
        shape=answer.shape,
    )


def answer_from_passages(
    *, question: str, passages: Sequence[RetrievedPassage], history: list[dict], backend: str, answer_length: str
) -> ShapedAnswer:
    """Generates the answer and numbers its citations per document in order of first use: `sources` are the
    documents it cites ("[n]" is sources[n-1]); retrieved documents it does not cite are `see_also`, ranked."""
    from .generation import get_generator

    chunks = _answer_chunks(question=question, passages=passages)
    answer = get_generator(backend, answer_length=answer_length).generate(question, history, chunks)
    return _shaped(answer, chunks=chunks, passages=passages)


def _message_begin(*, conversation: Conversation, text: str) -> tuple[str, list[dict], float]:
    """Checks the question, masks its personal data and stores it: (masked text, history window, start time)."""
    from .rag.safety import mask_personal_data

    if conversation.ended_at is not None:
        raise ApplicationError(
            "This conversation has ended: start a new one to ask another question.",
            code="conversation_ended",
            status_code=409,
        )
    text = (text or "").strip()
    if not text:
        raise ApplicationError("Type a question first: the message is empty.", code="empty_message")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ApplicationError(
            f"The message is longer than {settings.CHAT_MAX_MESSAGE_CHARS} characters: shorten it.",
            code="message_too_long",
        )
    started = time.perf_counter()
    masked = mask_personal_data(text)
    history = _history_window(conversation)
    with transaction.atomic():
        Message.objects.create(conversation=conversation, role=Message.Role.USER, text=masked)
        if not conversation.title:
            conversation.title = _excerpt(masked)[:80]
            conversation.save(update_fields=["title"])
    return masked, history, started


def _fixed_answer(*, user, conversation: Conversation, masked: str, embedder) -> tuple[dict | None, list]:
    """(the fields of a refusal or "nothing relevant" answer, None when the question is answered; the passages)."""
    from .rag.safety import classify_request, refusal_message

    fields: dict = {"sources": [], "see_also": [], "refused": False, "no_answer": False, "fell_back": False}
    kind = classify_request(masked)
    if kind is not None:
        return {**fields, "text": refusal_message(kind), "backend": "safety", "refused": True}, []
    passages = passages_for_named_codes(
        masked, knowledge_search(user=user, query=masked, embedder=embedder, conversation=conversation)
    )
    if not passages:
        return {**fields, "text": NOTHING_RELEVANT, "backend": "retrieval", "no_answer": True}, []
    return None, passages


def _answer_fields(answer: ShapedAnswer) -> dict:
    return {
        "text": answer.text,
        "backend": answer.backend,
        "fell_back": answer.fell_back,
        "sources": answer.sources,
        "see_also": answer.see_also,
        "refused": False,
        "no_answer": False,
    }


def _message_finish(*, conversation: Conversation, started: float, fields: dict) -> Message:
    elapsed = time.perf_counter() - started
    observe_chat_response(backend=fields["backend"], seconds=elapsed)
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, latency_ms=int(elapsed * 1000), **fields
    )


def message_send(*, user, conversation: Conversation, text: str, embedder=None) -> Message:
    """Answers a question: masks personal data, refuses unsafe requests, retrieves, generates, stores both turns.

    The user's text is masked before anything is stored or sent to a generator. Refusals and "nothing relevant"
    answers are fixed texts without sources: the bot does not guess.
    """
    from .generation import generator_backend_name

    masked, history, started = _message_begin(conversation=conversation, text=text)
    fields, passages = _fixed_answer(user=user, conversation=conversation, masked=masked, embedder=embedder)
    if fields is None:
        preference = preference_get(user=user)
        answer = answer_from_passages(
            question=masked,
            passages=passages,
            history=history,
            backend=generator_backend_name(preference.backend),
            answer_length=preference.answer_length,
        )
        fields = _answer_fields(answer)
    return _message_finish(conversation=conversation, started=started, fields=fields)


STREAMING_BACKENDS = ("http", "local")


def message_stream(*, user, conversation: Conversation, text: str, embedder=None) -> Iterator[tuple[str, dict]]:
    """message_send as events, for a page that shows the answer as it is written.

    The question is checked and stored now (errors are raised before any event); the returned iterator then yields
    ("extractive", {answer, sources, see_also}) at once — the quoted answer, which stays when no model writes one —
    then, with the `http` or `local` generator, ("delta", {text}) for each piece the model writes, or
    ("fallback", {reason}) when it fails or is silent for LLM_TIMEOUT_SECONDS, and last ("done", the stored
    message as /chat/message returns it). Refusals and "nothing relevant" give "done" alone.
    """
    from .api.serializers import message_result
    from .generation import generator_backend_name, get_generator

    masked, history, started = _message_begin(conversation=conversation, text=text)

    def events() -> Iterator[tuple[str, dict]]:
        fields, passages = _fixed_answer(user=user, conversation=conversation, masked=masked, embedder=embedder)
        if fields is None:
            preference = preference_get(user=user)
            backend = generator_backend_name(preference.backend)
            chunks = _answer_chunks(question=masked, passages=passages)
            quoted = _shaped(
                get_generator("extractive", answer_length=preference.answer_length).generate(masked, history, chunks),
                chunks=chunks,
                passages=passages,
            )
            yield "extractive", {"answer": quoted.text, "sources": quoted.sources, "see_also": quoted.see_also}
            answer = quoted
            if backend in STREAMING_BACKENDS:
                primary = get_generator(backend, answer_length=preference.answer_length).primary
                pieces: list[str] = []
                try:
                    for piece in _within_timeout(primary.stream(masked, history, chunks)):
                        pieces.append(piece)
                        yield "delta", {"text": piece}
                    answer = _shaped(
                        finish_streamed(primary.name, masked, "".join(pieces), chunks), chunks=chunks, passages=passages
                    )
                except Exception as exc:  # any failure of the model: the quoted answer stands
                    logger.warning("streaming from the %s generator failed: %s", backend, exc)
                    answer = dataclasses.replace(quoted, fell_back=True)
                    yield "fallback", {"reason": "The language model could not answer; the quoted answer stands."}
            fields = _answer_fields(answer)
        message = _message_finish(conversation=conversation, started=started, fields=fields)
        yield "done", message_result(message)

    return events()


def _within_timeout(pieces: Iterator[str]) -> Iterator[str]:
    """The pieces of a stream, read in a daemon thread: TimeoutError when none comes for LLM_TIMEOUT_SECONDS."""
    import queue

    inbox: queue.Queue = queue.Queue()
    finished = object()

    def pump() -> None:
        try:
            for piece in pieces:
                inbox.put(piece)
        except Exception as exc:  # handed to the reader
            inbox.put(exc)
        inbox.put(finished)

    threading.Thread(target=pump, name="chat-stream", daemon=True).start()
    while True:
        try:
            item = inbox.get(timeout=settings.LLM_TIMEOUT_SECONDS)
        except queue.Empty as exc:
            raise TimeoutError(f"no answer for {settings.LLM_TIMEOUT_SECONDS} s") from exc
        if item is finished:
            return
        if isinstance(item, Exception):
            raise item
        yield item


def feedback_give(*, user, message: Message, rating: int, comment: str = "") -> Feedback:
    """One rating per user and answer; giving it again replaces it."""
    if message.role != Message.Role.ASSISTANT:
        raise ApplicationError("Feedback can only be given on the bot's answers.", code="not_an_answer")
    if rating not in (1, -1):
        raise ApplicationError("rating must be 1 (helpful) or -1 (not helpful).", code="invalid_rating")
    feedback, _ = Feedback.objects.update_or_create(
        message=message, user=user, defaults={"rating": rating, "comment": (comment or "").strip()[:2000]}
    )
    return feedback


# --- export and import --------------------------------------------------------------------------------------------

EXPORT_FORMAT = "deepmed.chat"
EXPORT_VERSION = 1


def conversation_export(*, conversation: Conversation) -> dict:
    """The conversation as plain JSON data: messages with their sources and feedback, and a format version."""
    messages = conversation.messages.prefetch_related("feedback").order_by("created_at", "id")
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "conversation": {
            "id": conversation.pk,
            "title": conversation.title,
            "started_at": conversation.started_at.isoformat(),
            "ended_at": conversation.ended_at.isoformat() if conversation.ended_at else None,
            "config": conversation.config,
        },
        "messages": [
            {
                "id": message.pk,
                "role": message.role,
                "text": message.text,
                "sources": message.sources,
                "see_also": message.see_also,
                "backend": message.backend,
                "latency_ms": message.latency_ms,
                "refused": message.refused,
                "no_answer": message.no_answer,
                "created_at": message.created_at.isoformat(),
                "feedback": [
                    {"rating": feedback.rating, "comment": feedback.comment} for feedback in message.feedback.all()
                ],
            }
            for message in messages
        ],
    }


def conversation_import(*, user, data: dict) -> Conversation:
    """A new conversation owned by `user` from validated export data; all or nothing.

    Feedback in the file becomes the importer's own feedback. Message texts are masked again: a file edited by
    hand must not bring personal data in through the back door.
    """
    from .rag.safety import mask_personal_data

    meta = data["conversation"]
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user,
            title=(meta.get("title") or "")[:200],
            config=meta.get("config") or {},
            imported=True,
        )
        if meta.get("ended_at"):
            conversation.ended_at = timezone.now()
            conversation.save(update_fields=["ended_at"])
        for item in data["messages"]:
            message = Message.objects.create(
                conversation=conversation,
                role=item["role"],
                text=mask_personal_data(item["text"]),
                sources=item.get("sources") or [],
                see_also=item.get("see_also") or [],
                backend=item.get("backend") or "",
                latency_ms=item.get("latency_ms"),
                refused=bool(item.get("refused")),
                no_answer=bool(item.get("no_answer")),
            )
            for feedback in item.get("feedback") or []:
                if message.role == Message.Role.ASSISTANT:
                    Feedback.objects.update_or_create(
                        message=message,
                        user=user,
                        defaults={"rating": feedback["rating"], "comment": feedback.get("comment") or ""},
                    )
    return conversation
