"""Chat pages: the chat page for any signed-in user, the knowledge-base and feedback pages for staff only."""

from chatbot.models import KnowledgeDocument


def test_chat_page_loads_its_script_and_lists_only_my_conversations(client, alice, charlie):
    from chatbot import services

    services.conversation_start(user=alice, title="Alice's question")
    services.conversation_start(user=charlie, title="Charlie's question")
    client.force_login(alice)
    response = client.get("/chat")
    assert response.status_code == 200
    html = response.content.decode()
    assert "js/chat.js" in html and "Alice&#x27;s question" in html
    assert "Charlie" not in html
    assert "<script>" not in html  # no inline scripts under the CSP


def test_chat_page_gives_404_for_someone_elses_conversation(client, alice, charlie):
    from chatbot import services

    conversation = services.conversation_start(user=alice)
    client.force_login(charlie)
    assert client.get(f"/chat?c={conversation.pk}").status_code == 404


def test_knowledge_and_feedback_pages_are_staff_only(client, alice):
    client.force_login(alice)
    assert client.get("/chat/knowledge").status_code == 403
    assert client.get("/chat/feedback").status_code == 403


def test_staff_add_pasted_text_on_the_knowledge_page(
    client, bob, django_capture_on_commit_callbacks, second_factor_login
):
    second_factor_login(client, bob)
    assert client.get("/chat/knowledge").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/chat/knowledge",
            {"title": "Ward rules", "text": "Visitors leave by eight.", "format": "text", "source": "Ward 7"},
        )
    assert response.status_code == 302
    document = KnowledgeDocument.objects.get(title="Ward rules")
    assert document.status == "ready"
    rows = client.get("/chat/knowledge/rows").content.decode()
    assert "Ward rules" in rows and "Ready" in rows
    assert client.post(f"/chat/knowledge/{document.pk}/delete").status_code == 302
    assert not KnowledgeDocument.objects.exists()


def test_staff_feedback_page_lists_thumbs_down_first(client, bob, alice, second_factor_login):
    from chatbot import services
    from chatbot.models import Message

    conversation = services.conversation_start(user=alice)
    up = Message.objects.create(conversation=conversation, role="assistant", text="Good answer")
    down = Message.objects.create(conversation=conversation, role="assistant", text="Bad answer")
    services.feedback_give(user=alice, message=up, rating=1)
    services.feedback_give(user=alice, message=down, rating=-1, comment="Wrong code")
    second_factor_login(client, bob)
    html = client.get("/chat/feedback").content.decode()
    assert html.index("Bad answer") < html.index("Good answer")
    assert "Wrong code" in html
