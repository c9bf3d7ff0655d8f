"""The ten /chat/* routes over JWT with the documented shapes, refusals, and the staff knowledge-base API."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chatbot.models import Conversation, Feedback, KnowledgeDocument, Message


def start(client) -> int:
    response = client.post("/chat/start", {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["conversation_id"]


def ask(client, conversation_id, message):
    return client.post("/chat/message", {"conversation_id": conversation_id, "message": message}, format="json")


@pytest.fixture
def alice_conversation(kb, alice_api):
    conversation_id = start(alice_api)
    answer = ask(alice_api, conversation_id, "What does ICD-10 code E11 cover?").json()
    return conversation_id, answer


def test_icd_question_is_answered_with_the_e11_source(alice_conversation):
    _, answer = alice_conversation
    assert set(answer) >= {"message_id", "answer", "sources"}
    assert answer["sources"][0]["code"] == "ICD-10-CM E11"
    assert set(answer["sources"][0]) >= {"document_id", "title", "excerpt", "score"}
    # Citations are numbered into `sources`: the E11 passage is quoted with its number.
    cited = {int(number) for number in re.findall(r"\[(\d+)\]", answer["answer"])}
    assert any(answer["sources"][number - 1]["code"] == "ICD-10-CM E11" for number in cited)


def test_training_question_cites_the_user_guide(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "How do I train a model on my CSV?").json()
    assert any(source["code"] == "guide:training" for source in answer["sources"])


def test_insulin_dose_for_a_patient_is_refused_without_sources(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "What dose of insulin should I give my patient?").json()
    assert answer["refused"] is True
    assert answer["sources"] == []
    assert Message.objects.get(pk=answer["message_id"]).refused


def test_unrelated_question_says_nothing_relevant_was_found(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "Best pizza recipe with mozzarella and basil").json()
    assert answer["no_answer"] is True
    assert answer["sources"] == []
    assert "could not find anything relevant" in answer["answer"]


def test_personal_data_is_masked_before_it_is_stored(kb, alice_api):
    conversation_id = start(alice_api)
    ask(alice_api, conversation_id, "Email jane.doe@example.org about ICD-10 code E11")
    stored = Message.objects.get(conversation_id=conversation_id, role="user").text
    assert "jane.doe@example.org" not in stored


@pytest.mark.parametrize("message", ["", "   ", "x" * 2001])
def test_empty_or_too_long_message_is_400(kb, alice_api, message):
    response = ask(alice_api, start(alice_api), message)
    assert response.status_code == 400
    assert response.json()["code"] in {"empty_message", "message_too_long"}


def test_ended_conversation_refuses_new_questions(kb, alice_api):
    conversation_id = start(alice_api)
    response = alice_api.post("/chat/end", {"conversation_id": conversation_id}, format="json")
    assert response.status_code == 200 and response.json()["ended_at"]
    response = ask(alice_api, conversation_id, "What is E11?")
    assert response.status_code == 409
    assert "ended" in response.json()["detail"]


def test_history_lists_conversations_and_messages_with_feedback(alice_conversation, alice_api):
    conversation_id, answer = alice_conversation
    alice_api.post("/chat/feedback", {"message_id": answer["message_id"], "rating": 1}, format="json")
    listing = alice_api.get("/chat/history").json()
    assert [c["id"] for c in listing["conversations"]] == [conversation_id]
    history = alice_api.get(f"/chat/history?conversation_id={conversation_id}").json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["sources"] == answer["sources"]
    assert history["messages"][1]["feedback"] == {"rating": 1, "comment": ""}


def test_feedback_with_comment_is_stored_once_per_answer(alice_conversation, alice_api, alice):
    _, answer = alice_conversation
    for rating, comment in ((1, ""), (-1, "Missing the subcodes")):
        response = alice_api.post(
            "/chat/feedback", {"message_id": answer["message_id"], "rating": rating, "comment": comment}, format="json"
        )
        assert response.status_code == 200
    feedback = Feedback.objects.get(message_id=answer["message_id"], user=alice)
    assert (feedback.rating, feedback.comment) == (-1, "Missing the subcodes")


def test_feedback_on_a_question_or_with_a_bad_rating_is_400(alice_conversation, alice_api):
    conversation_id, answer = alice_conversation
    question = Message.objects.get(conversation_id=conversation_id, role="user")
    assert alice_api.post("/chat/feedback", {"message_id": question.pk, "rating": 1}, format="json").status_code == 400
    bad = alice_api.post("/chat/feedback", {"message_id": answer["message_id"], "rating": 5}, format="json")
    assert bad.status_code == 400


def test_charlie_gets_404_for_alices_conversation_everywhere(alice_conversation, charlie_api):
    conversation_id, answer = alice_conversation
    responses = [
        charlie_api.get(f"/chat/history?conversation_id={conversation_id}"),
        ask(charlie_api, conversation_id, "What is E11?"),
        charlie_api.post("/chat/end", {"conversation_id": conversation_id}, format="json"),
        charlie_api.get(f"/chat/export?conversation_id={conversation_id}"),
        charlie_api.post("/chat/feedback", {"message_id": answer["message_id"], "rating": -1}, format="json"),
    ]
    assert [response.status_code for response in responses] == [404] * 5
    assert Conversation.objects.get(pk=conversation_id).ended_at is None
    assert not Feedback.objects.exists()


def test_routes_need_a_signed_in_user(api_client):
    assert api_client.post("/chat/start", {}, format="json").status_code == 401
    assert api_client.get("/chat/status").status_code == 401


def test_status_reports_backend_and_knowledge_base_size(kb, alice_api):
    status = alice_api.get("/chat/status").json()
    assert status["backend"] == "extractive"
    assert status["knowledge_base"]["documents"] == len(kb)
    assert status["knowledge_base"]["chunks"] > 0
    assert status["embedding_model"]["status"] == "ok"
    assert status["vector_store"]["backend"] in {"numpy", "pgvector"}


def test_config_is_per_user_and_limited_to_allowed_backends(db, alice_api, charlie_api):
    response = alice_api.post("/chat/config", {"answer_length": "short", "show_sources": False}, format="json")
    assert response.status_code == 200
    assert response.json()["answer_length"] == "short" and response.json()["show_sources"] is False
    assert charlie_api.get("/chat/config").json()["answer_length"] == "normal"
    refused = alice_api.post("/chat/config", {"backend": "http"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "backend_not_allowed"
    assert alice_api.post("/chat/config", {"answer_length": "huge"}, format="json").status_code == 400


def _without_ids(export):
    export = json.loads(json.dumps(export))
    for key in ("exported_at",):
        export.pop(key)
    for key in ("id", "started_at", "ended_at"):
        export["conversation"].pop(key)
    for message in export["messages"]:
        message.pop("id")
        message.pop("created_at")
    return export


def test_export_then_import_round_trips_a_conversation(alice_conversation, alice_api, charlie_api):
    conversation_id, answer = alice_conversation
    alice_api.post(
        "/chat/feedback", {"message_id": answer["message_id"], "rating": -1, "comment": "old"}, format="json"
    )
    exported = alice_api.get(f"/chat/export?conversation_id={conversation_id}").json()
    assert exported["format"] == "deepmed.chat" and exported["version"] == 1
    imported = charlie_api.post("/chat/import", exported, format="json")
    assert imported.status_code == 201
    new_id = imported.json()["conversation_id"]
    assert Conversation.objects.get(pk=new_id).owner.email == "charlie@example.org"
    again = charlie_api.get(f"/chat/export?conversation_id={new_id}").json()
    assert _without_ids(again) == _without_ids(exported)


def test_import_refuses_oversized_and_invalid_files(db, alice_api, settings):
    settings.CHAT_IMPORT_MAX_BYTES = 1000
    big = {
        "format": "deepmed.chat",
        "version": 1,
        "conversation": {},
        "messages": [{"role": "user", "text": "x" * 2000}],
    }
    response = alice_api.post("/chat/import", big, format="json")
    assert response.status_code == 400 and response.json()["code"] == "import_too_large"
    invalid = {
        "format": "deepmed.chat",
        "version": 1,
        "conversation": {},
        "messages": [{"role": "robot", "text": "hi"}],
    }
    assert alice_api.post("/chat/import", invalid, format="json").status_code == 400
    wrong_format = {"format": "other", "version": 1, "conversation": {}, "messages": []}
    assert alice_api.post("/chat/import", wrong_format, format="json").status_code == 400
    assert not Conversation.objects.exists()


def test_analytics_per_user_and_platform_totals_for_staff(kb, alice_api, bob_api):
    conversation_id = start(alice_api)
    answer = ask(alice_api, conversation_id, "What does ICD-10 code E11 cover?").json()
    ask(alice_api, conversation_id, "Best pizza recipe with mozzarella and basil")
    alice_api.post("/chat/feedback", {"message_id": answer["message_id"], "rating": 1}, format="json")
    mine = alice_api.get("/chat/analytics").json()
    assert "platform" not in mine
    assert mine["user"]["conversations"] == 1 and mine["user"]["messages"] == 4
    assert mine["user"]["feedback"]["ratio"] == 1.0
    assert mine["user"]["latency_ms"]["p50"] is not None
    assert mine["user"]["top_unanswered"][0]["question"].startswith("best pizza recipe")
    staff = bob_api.get("/chat/analytics").json()
    assert staff["platform"]["conversations"] == 1 and staff["user"]["conversations"] == 0


def test_non_staff_cannot_add_or_delete_documents(kb, alice_api):
    response = alice_api.post("/api/v1/knowledge/documents/", {"title": "T", "text": "Some text."}, format="json")
    assert response.status_code == 403
    document = KnowledgeDocument.objects.first()
    assert alice_api.delete(f"/api/v1/knowledge/documents/{document.pk}/").status_code == 403
    assert KnowledgeDocument.objects.filter(pk=document.pk).exists()


def test_staff_add_a_markdown_file_list_and_delete_it(db, bob_api, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("ward.md", b"# Ward rules\n\nVisitors leave by eight in the evening.")
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_api.post("/api/v1/knowledge/documents/", {"title": "Ward rules", "file": upload})
    assert response.status_code == 202, response.content
    document = KnowledgeDocument.objects.get(pk=response.json()["id"])
    assert (document.status, document.format, document.n_chunks) == ("ready", "markdown", 1)
    assert [d["id"] for d in bob_api.get("/api/v1/knowledge/documents/").json()] == [document.pk]
    assert bob_api.delete(f"/api/v1/knowledge/documents/{document.pk}/").status_code == 204
    assert not KnowledgeDocument.objects.exists()


def test_staff_upload_of_a_binary_file_is_400(db, bob_api):
    upload = SimpleUploadedFile("scan.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    response = bob_api.post("/api/v1/knowledge/documents/", {"title": "Scan", "file": upload})
    assert response.status_code == 400 and response.json()["code"] == "unsupported_file"
    assert not KnowledgeDocument.objects.exists()
