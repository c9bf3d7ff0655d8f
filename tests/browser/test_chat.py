"""A clinician asks the chatbot a question, sees an answer with citations, opens a cited passage and rates it."""

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from chatbot.models import Feedback

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


@pytest.mark.usefixtures("kb")
def test_question_gets_an_answer_with_citations_and_a_thumbs_up(signed_in_page, alice, page_problems):
    page = signed_in_page
    page.goto("/chat")
    page.get_by_label("Your question").fill("What does ICD-10 code E11 cover?")
    page.get_by_role("button", name="Send").click()

    answer = page.locator(".chat-assistant")
    expect(answer).to_contain_text("Type 2 diabetes mellitus", timeout=30_000)
    citation = answer.locator(".chat-cite").first
    expect(citation).to_have_text(re.compile(r"\[\d+\]"))
    citation.click()
    opened = page.locator(".chat-source[open]")
    expect(opened).to_have_count(1)
    expect(opened.locator(".chat-source-excerpt")).not_to_be_empty()

    answer.get_by_role("button", name="Helpful (thumbs up)").click()
    expect(answer.locator(".chat-feedback-status")).to_have_text("Thank you for your feedback.")
    assert Feedback.objects.get(user=alice).rating == 1
    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == []
