"""Knowledge base (documents, chunks, lexical postings) and conversations (messages, feedback, preferences).

The knowledge-base models may live in a separate database (VECTOR_DATABASE_URL, see chatbot/routers.py), so their
links to users and groups are plain ids without a database constraint: a foreign key cannot cross databases.
"""

import numpy as np
from django.conf import settings
from django.db import models

EMBEDDING_DIMENSION = 384


class KnowledgeDocument(models.Model):
    """One source text of the knowledge base (a guide section, an ICD-10-CM category, an HPO term, an upload), or
    a user's document attached to a conversation."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        INGESTING = "ingesting", "Ingesting"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Format(models.TextChoices):
        TEXT = "text", "Plain text"
        MARKDOWN = "markdown", "Markdown"
        HTML = "html", "HTML"

    # Stable identity across re-loads ("guide:training", "icd10cm:E11", "upload:12"): what makes loading idempotent.
    key = models.CharField(max_length=191, unique=True)
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=200, help_text="Where the text comes from, e.g. ICD-10-CM, HPO, DeepMed.")
    code = models.CharField(max_length=100, blank=True, help_text="e.g. ICD-10-CM E11, HPO HP:0000822")
    version = models.CharField(max_length=100, blank=True)
    licence = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=16, default="en")
    url = models.CharField(max_length=500, blank=True)
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.TEXT)
    # The text as given (PDFs are stored as their extracted text), so a re-ingest needs nothing else.
    content = models.TextField()
    content_sha256 = models.CharField(max_length=64)
    # Per-group knowledge bases: null means every signed-in user may read it. No database constraint (see module doc);
    # DO_NOTHING so deleting a group never reaches into another database: a dangling id stays restricted.
    group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # A document a user attached to one of their conversations: private to that user and that conversation, never
    # part of the shared knowledge base (the vector stores and the staff pages leave it out). Both null for the
    # shared documents. Ids without constraints, like `group` (see the module doc).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    conversation = models.ForeignKey(
        "chatbot.Conversation",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    n_chunks = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source", "title"]
        indexes = [
            models.Index(fields=["source", "code"]),
            models.Index(fields=["owner", "conversation"], name="chatbot_doc_owner_conversation"),
        ]

    def __str__(self):
        return f"{self.title} ({self.source})"


class KnowledgeChunk(models.Model):
    """A passage of a document with its embedding; what retrieval returns and answers cite."""

    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks")
    key = models.CharField(max_length=191, unique=True)
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading = models.CharField(max_length=300, blank=True)
    code = models.CharField(max_length=100, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # float32 little-endian bytes: portable across SQLite, MariaDB and PostgreSQL. On PostgreSQL with pgvector an
    # extra `embedding vector(384)` column (made by migration 0002, outside the ORM) holds the same vector for HNSW.
    embedding_f32 = models.BinaryField()
    # Number of lexical tokens of the body (search_text) and of the title field (title and heading), for BM25's
    # length normalisation of each field.
    n_terms = models.PositiveIntegerField(default=0)
    n_title_terms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["document_id", "ordinal"]

    def __str__(self):
        return self.key

    @property
    def embedding(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding_f32), dtype="<f4")


class LexicalPosting(models.Model):
    """How often a term occurs in a field of a chunk: the BM25 indexes, written at ingestion, not rebuilt per query."""

    class Field(models.TextChoices):
        # Two BM25 rankings are fused with the dense one (rag.fusion): the body and the title field.
        BODY = "body", "Body (title, heading and text)"
        TITLE = "title", "Title and heading"

    term = models.CharField(max_length=64)
    chunk = models.ForeignKey(KnowledgeChunk, on_delete=models.CASCADE, related_name="postings")
    field = models.CharField(max_length=8, choices=Field.choices, default=Field.BODY)
    tf = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["field", "term"], name="chatbot_posting_field_term")]
        constraints = [
            models.UniqueConstraint(fields=["field", "term", "chunk"], name="chatbot_posting_field_term_chunk_unique")
        ]

    def __str__(self):
        return f"{self.term}@{self.chunk_id}:{self.field}"


class Conversation(models.Model):
    """A chat between one user and the bot; the settings it ran with are kept as a snapshot."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)
    imported = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["owner", "-started_at"])]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None


class Message(models.Model):
    """One turn: the user's question (personal data masked) or the bot's answer with its sources."""

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    # [{"document_id","title","excerpt","score","code","chunk_key"}]: copies, so answers stay readable after the
    # knowledge base changes. `sources` are the documents the answer cites ("[n]" is sources[n-1]), numbered in
    # order of use; `see_also` the other retrieved documents, ranked, which the answer does not use.
    sources = models.JSONField(default=list, blank=True)
    see_also = models.JSONField(default=list, blank=True)
    backend = models.CharField(max_length=32, blank=True)
    fell_back = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    refused = models.BooleanField(default=False)
    no_answer = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.role} #{self.pk}"


class Feedback(models.Model):
    """A thumbs up (1) or down (-1) on an answer, with an optional comment; one per user and answer."""

    class Rating(models.IntegerChoices):
        UP = 1, "Helpful"
        DOWN = -1, "Not helpful"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_feedback")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rating", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="chatbot_feedback_one_per_user")]

    def __str__(self):
        return f"{self.get_rating_display()} on message {self.message_id}"


class ChatPreference(models.Model):
    """A user's chat settings: answer length, generator backend (from the allowed list), sources shown."""

    class AnswerLength(models.TextChoices):
        SHORT = "short", "Short"
        NORMAL = "normal", "Normal"
        LONG = "long", "Long"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_preference")
    answer_length = models.CharField(max_length=8, choices=AnswerLength.choices, default=AnswerLength.NORMAL)
    backend = models.CharField(max_length=16, default="auto")
    show_sources = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Chat preferences of user {self.user_id}"
