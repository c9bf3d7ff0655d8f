"""Background jobs of the chatbot (the `chatbot` queue). Thin wrappers taking ids: the services do the work."""

from celery import shared_task

from . import services


@shared_task(name="chatbot.tasks.knowledge_document_ingest")
def knowledge_document_ingest(document_id: int) -> dict:
    """Chunk, embed and index one document; status, progress and errors are recorded on its row."""
    document = services.knowledge_document_ingest(document_id=document_id)
    return {"document_id": document.pk, "status": document.status, "n_chunks": document.n_chunks}


@shared_task(name="chatbot.tasks.knowledge_base_load")
def knowledge_base_load(only: list[str] | None = None, limit: int | None = None) -> dict:
    """The default knowledge base (guide, ICD-10-CM, HPO), loaded idempotently: what `make run` queues."""
    from .knowledge_sources import default_sources

    report = services.knowledge_base_load(sources=default_sources(only=only, limit=limit))
    return {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "chunks": report.chunks,
    }
