"""What a clinician sees of an answer: a how-to question shows the guide's steps as a numbered list with one
citation, a code question shows the term and its code in the first sentence."""

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

# The chatbot's fixed knowledge base, real embedder and extractive-answer settings (autouse there, used here).
from chatbot.tests.conftest import _chat_settings, chat_embedder, corpus_sources, kb  # noqa: F401


@pytest.fixture
def signed_in_page(page, alice, live_server):
    client = Client()
    client.force_login(alice)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return page


def ask(page, question: str):
    page.get_by_label("Your question").fill(question)
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".chat-assistant").last
    expect(answer.locator(".chat-answer")).not_to_be_empty(timeout=30_000)
    return answer


@pytest.mark.usefixtures("kb")
def test_how_to_question_shows_numbered_steps_with_one_citation(signed_in_page, page_problems):
    page = signed_in_page
    page.goto("/chat")
    answer = ask(page, "How do I turn on two-factor login?")
    steps = answer.locator("ol.chat-steps > li")
    expect(steps.first).to_contain_text("Install an authenticator app")
    assert steps.count() >= 3
    expect(answer.locator(".chat-cite")).to_have_count(1)
    expect(answer.locator(".chat-sources > li")).to_have_count(1)
    expect(answer.locator(".chat-sources")).to_contain_text("Accounts")
    assert page_problems.console_errors == [] and page_problems.page_errors == []


@pytest.mark.usefixtures("kb")
def test_code_question_shows_the_term_and_code_in_the_first_sentence(signed_in_page, page_problems):
    page = signed_in_page
    page.goto("/chat")
    answer = ask(page, "What is the Human Phenotype Ontology term for seizures?")
    first_paragraph = answer.locator(".chat-answer p").first
    expect(first_paragraph).to_have_text(re.compile(r"^Seizure \(HPO HP:0001250\): "))
    expect(answer.locator(".chat-sources > li")).to_have_count(1)
    # The neighbours retrieval found are offered apart, not as the answer's sources.
    expect(answer.locator(".chat-see-also summary")).to_contain_text("See also")
    assert page_problems.console_errors == [] and page_problems.page_errors == []


@pytest.mark.usefixtures("kb")
def test_loading_banner_shows_a_source_being_embedded_until_it_is_ready(signed_in_page, page_problems):
    from chatbot.models import KnowledgeDocument

    KnowledgeDocument.objects.bulk_create(
        KnowledgeDocument(
            key=f"hpo:pending:{index}",
            title=f"Pending term {index}",
            source="HPO",
            content="text",
            content_sha256="0" * 64,
            status="ingesting",
        )
        for index in range(4)
    )
    page = signed_in_page
    page.goto("/chat")
    banner = page.locator("#chat-sources-status")
    expect(banner).to_contain_text("Some sources are still being indexed")
    hpo = banner.locator('li[data-source="HPO"]')
    expect(hpo).to_contain_text("Indexing")
    expect(hpo).to_contain_text("3 of 7 documents ready")  # the corpus's 3 HPO terms, 4 more on their way
    expect(hpo.locator("progress")).to_have_count(1)
    expect(banner.locator('li[data-source="ICD-10-CM"]')).to_contain_text("Ready")

    KnowledgeDocument.objects.filter(key__startswith="hpo:pending:").update(status="ready", progress=1.0)
    expect(hpo).to_contain_text("Ready", timeout=15_000)  # the banner polls itself
    expect(banner).not_to_contain_text("still being indexed")
    assert page_problems.console_errors == [] and page_problems.page_errors == []


@pytest.mark.usefixtures("kb")
def test_the_conversation_list_shows_a_new_conversation_without_a_reload(signed_in_page, page_problems):
    page = signed_in_page
    page.goto("/chat")
    expect(page.locator("#chat-history-empty")).to_be_visible()
    ask(page, "What does ICD-10 code E11 cover?")
    history = page.locator("#chat-history")
    expect(history.get_by_role("link", name="What does ICD-10 code E11 cover?")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator("#chat-history-empty")).to_be_hidden()
    assert page_problems.console_errors == [] and page_problems.page_errors == []


@pytest.mark.usefixtures("kb")
def test_an_attached_document_is_indexed_and_cited(signed_in_page, page_problems, tmp_path):
    protocol = tmp_path / "ward7-protocol.md"
    protocol.write_text(
        "# Ward 7 quokka telemetry protocol\n\n"
        "The quokka telemetry protocol of ward 7 checks the zebrafish monitor every hour and logs the readings.\n",
        encoding="utf-8",
    )
    page = signed_in_page
    page.goto("/chat")
    page.get_by_label("Attach a document").set_input_files(str(protocol))
    attached = page.locator("#chat-attachments li")
    expect(attached).to_contain_text("ward7-protocol.md")
    expect(attached).to_contain_text("Ready", timeout=30_000)

    answer = ask(page, "What does the ward 7 quokka telemetry protocol check?")
    expect(answer.locator(".chat-answer")).to_contain_text("zebrafish monitor every hour")
    expect(answer.locator(".chat-sources > li").first).to_contain_text("ward7-protocol.md")
    assert page_problems.console_errors == [] and page_problems.page_errors == []


@pytest.mark.usefixtures("kb")
def test_a_model_answer_is_shown_as_it_is_written_after_the_quoted_one(signed_in_page, page_problems, settings):
    import threading
    from http.server import ThreadingHTTPServer

    from chatbot import generation
    from chatbot.tests.test_streaming import StreamingEndpoint

    StreamingEndpoint.mode, StreamingEndpoint.pause = "ok", 1.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), StreamingEndpoint)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.CHAT_GENERATOR = "http"
    settings.LLM_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.LLM_TIMEOUT_SECONDS = 10.0
    generation.reset_generators()
    try:
        page = signed_in_page
        page.goto("/chat")
        page.get_by_label("Your question").fill("What does ICD-10 code E11 cover?")
        page.get_by_role("button", name="Send").click()
        answer = page.locator(".chat-assistant").last
        # The quoted answer at once, then the model's words replacing it while they come, then the stored answer.
        expect(answer).to_contain_text("Type 2 diabetes mellitus (ICD-10-CM E11)", timeout=30_000)
        expect(page.locator(".chat-provisional")).to_contain_text("E11 is type 2 diabetes", timeout=15_000)
        final = page.locator(".chat-assistant:not(.chat-provisional)").last
        expect(final).to_contain_text("E11 is type 2 diabetes mellitus", timeout=15_000)
        expect(final.get_by_role("button", name="Helpful (thumbs up)")).to_be_visible()
        expect(page.locator(".chat-provisional")).to_have_count(0)
    finally:
        server.shutdown()
        server.server_close()
        generation.reset_generators()
        StreamingEndpoint.pause = 0.0
    assert page_problems.console_errors == [] and page_problems.page_errors == []
