"""The default knowledge base: DeepMed's own user guide plus the packaged ICD-10-CM and HPO sources.

The guide is rendered from the same templates as the /docs/ pages (only each section's `doc_body` block, without
navigation), so the bot's answers about the platform match what the guide says on this installation.
"""

from __future__ import annotations

from django.template import Context
from django.template.loader import get_template
from django.template.loader_tags import ExtendsNode

from deepmed.pages import DOC_SECTIONS, _settings_facts

SOURCE_NAMES = ("guide", "icd10", "hpo")
GUIDE_SOURCE = "DeepMed user guide"


def _doc_body_html(template_name: str, context: dict) -> str:
    template = get_template(template_name).template
    extends = next(node for node in template.nodelist if isinstance(node, ExtendsNode))
    body = extends.blocks["doc_body"]
    render_context = Context(context, autoescape=True)
    # What Template.render would set up: {% url %} and error reporting look at the template being rendered.
    with render_context.render_context.push_state(template), render_context.bind_template(template):
        return body.nodelist.render(render_context)


def guide_documents(*, base_url: str = "") -> list:
    """One document per user-guide section, as Markdown-like text (headings kept, so chunks follow them)."""
    from django.conf import settings

    from .rag.chunking import html_to_text
    from .rag.sources import SourceDocument

    facts = {**_settings_facts(), "sections": DOC_SECTIONS, "base_url": base_url or settings.SITE_URL}
    documents = []
    for section in DOC_SECTIONS:
        html = _doc_body_html(section.template_name, {**facts, "section": section})
        text = html_to_text(html)
        if not section.available:
            text = f"(This part of DeepMed is not available yet; the guide describes how it will work.)\n\n{text}"
        documents.append(
            SourceDocument(
                key=f"guide:{section.slug}",
                title=f"User guide: {section.title}",
                source=GUIDE_SOURCE,
                code=f"guide:{section.slug}",
                text=f"{section.summary}\n\n{text}",
                version="",
                licence="DeepMed documentation",
                language="en",
                url=f"/docs/{section.slug}/",
                fmt="markdown",
            )
        )
    return documents


def default_sources(*, only: list[str] | None = None, limit: int | None = None) -> list:
    """Source documents of the default knowledge base; `only` picks sources, `limit` caps each (quick runs)."""
    from .rag.sources import hpo_documents, icd10cm_documents

    wanted = list(only or SOURCE_NAMES)
    unknown = sorted(set(wanted) - set(SOURCE_NAMES))
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}: choose from {', '.join(SOURCE_NAMES)}")
    loaders = {"guide": guide_documents, "icd10": icd10cm_documents, "hpo": hpo_documents}
    documents = []
    for name in SOURCE_NAMES:
        if name in wanted:
            loaded = loaders[name]()
            documents.extend(loaded[:limit] if limit else loaded)
    return documents
