"""Honest loading: the chat page says which knowledge sources are ready and how far the others are, the staff
knowledge page is paginated with per-source progress, non-staff get the site's 403 page, and a first load creates
every document row before embedding starts."""

import re

import pytest
from django.contrib.auth.models import Group

from chatbot import services
from chatbot.models import KnowledgeDocument


def make_documents(source: str, n: int, *, status: str = "ready", progress: float = 1.0, **fields) -> None:
    KnowledgeDocument.objects.bulk_create(
        KnowledgeDocument(
            key=f"{source}:{status}:{index}",
            title=f"{source} document {index}",
            source=source,
            content="text",
            content_sha256="0" * 64,
            status=status,
            progress=progress,
            **fields,
        )
        for index in range(n)
    )


@pytest.fixture
def half_loaded(db):
    """The guide is ready; ICD-10-CM is being embedded (3 of 8 documents ready, one of the rest half done)."""
    make_documents("DeepMed user guide", 4)
    make_documents("ICD-10-CM", 3)
    make_documents("ICD-10-CM", 4, status="ingesting", progress=0.0)
    make_documents("ICD-10-CM", 1, status="queued", progress=0.5)


def test_chat_page_says_which_sources_are_ready_and_how_far_the_others_are(client, alice, half_loaded):
    client.force_login(alice)
    html = client.get("/chat").content.decode()
    banner = html[html.index('id="chat-sources-status"') :]
    banner = banner[: banner.index("</section>")]
    assert "Some sources are still being indexed" in banner
    assert re.search(r"DeepMed user guide</span>\s*<span class=\"badge badge-ok\">Ready</span>", banner)
    # (3 ready + 0.5 of one queued) / 8 documents = 43 %.
    assert "3 of 8 documents ready (43%)" in banner
    assert 'hx-get="/chat/sources"' in banner and "every 3s" in banner


def test_the_banner_stops_polling_once_every_source_is_ready(client, alice, half_loaded):
    client.force_login(alice)
    KnowledgeDocument.objects.update(status="ready", progress=1.0)
    html = client.get("/chat/sources").content.decode()
    assert "ICD-10-CM" in html and "8 documents" in html
    assert "hx-get" not in html and "still being indexed" not in html


def test_the_banner_counts_only_documents_the_reader_may_see(client, alice, charlie, half_loaded):
    ward = Group.objects.create(name="Ward 7")
    alice.groups.add(ward)
    make_documents("Ward protocols", 2, status="ingesting", progress=0.0, group_id=ward.pk)
    client.force_login(charlie)
    assert "Ward protocols" not in client.get("/chat/sources").content.decode()
    client.force_login(alice)
    assert "Ward protocols" in client.get("/chat/sources").content.decode()


def test_chat_status_reports_each_sources_progress(alice_api, half_loaded):
    sources = {source["source"]: source for source in alice_api.get("/chat/status").json()["sources"]}
    assert sources["ICD-10-CM"] | {"progress": None} == {
        "source": "ICD-10-CM",
        "documents": 8,
        "ready": 3,
        "waiting": 5,
        "failed": 0,
        "progress": None,
        "percent": 43,
        "state": "indexing",
    }
    assert sources["DeepMed user guide"]["state"] == "ready"


def test_knowledge_page_shows_fifty_documents_a_page_and_each_sources_progress(
    client, bob, second_factor_login, half_loaded
):
    make_documents("HPO", 112)  # 124 documents in all: pages of 50, 50 and 24
    second_factor_login(client, bob)
    first = client.get("/chat/knowledge").content.decode()
    assert first.count('aria-label="Delete ') == 50
    assert "page 1 of 3" in first and "?page=2" in first
    progress = first[first.index("Indexing progress by source") : first.index("</table>")]
    assert re.search(r"ICD-10-CM</th>\s*<td class=\"num\">8</td>\s*<td class=\"num\">3</td>", progress)
    assert "HPO" in progress and "DeepMed user guide" in progress
    last = client.get("/chat/knowledge?page=3").content.decode()
    assert last.count('aria-label="Delete ') == 24 and "page 3 of 3" in last
    rows = client.get("/chat/knowledge/rows?page=2").content.decode()
    assert rows.count('aria-label="Delete ') == 50
    # Still indexing: the tables poll themselves, staying on the page the reader is on.
    assert 'hx-get="/chat/knowledge/rows?page=2"' in rows and "every 2s" in rows


@pytest.mark.parametrize("path", ["/chat/knowledge", "/chat/knowledge/rows"])
def test_non_staff_get_the_sites_403_page_not_json(client, alice, path):
    client.force_login(alice)
    response = client.get(path, HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "You do not have access to this page" in response.content.decode()


def test_a_first_load_creates_every_row_before_embedding_starts(db, corpus_sources, chat_embedder):
    seen = []

    class WatchingEmbedder:
        dimension = chat_embedder.dimension

        def encode(self, texts):
            if not seen:
                seen.append(dict(KnowledgeDocument.objects.values_list("key", "status")))
            return chat_embedder.encode(texts)

    report = services.knowledge_base_load(sources=corpus_sources, embedder=WatchingEmbedder())
    assert report.created == len(corpus_sources)
    (first_look,) = seen
    assert set(first_look) == {source.key for source in corpus_sources}
    assert set(first_look.values()) == {"ingesting"}
    assert set(KnowledgeDocument.objects.values_list("status", flat=True)) == {"ready"}
