"""Streaming answers (/chat/message/stream, server-sent events): the quoted answer at once, then the `http`
generator's answer piece by piece, and the quoted answer standing when the model fails or stays silent."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chatbot import generation
from chatbot.models import Message

from .test_api import start

QUESTION = "What does ICD-10 code E11 cover?"


class StreamingEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions that streams its answer as server-sent events."""

    mode = "ok"
    pieces = ["E11 is ", "type 2 diabetes ", "mellitus [1]."]
    pause = 0.0  # seconds before each piece

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["stream"] is True
        if self.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        if self.mode == "silent":
            time.sleep(2)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for piece in self.pieces:
                time.sleep(self.pause)
                chunk = {"choices": [{"delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader gave up waiting (the "silent" case): nothing to answer to

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint(settings):
    StreamingEndpoint.mode = "ok"
    StreamingEndpoint.pause = 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), StreamingEndpoint)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.CHAT_GENERATOR = "http"
    settings.LLM_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.LLM_MODEL = "test-model"
    settings.LLM_TIMEOUT_SECONDS = 1.0
    generation.reset_generators()
    yield StreamingEndpoint
    server.shutdown()
    server.server_close()
    generation.reset_generators()


def stream(client, conversation_id, message):
    response = client.post(
        "/chat/message/stream",
        {"conversation_id": conversation_id, "message": message},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    events = []
    for block in b"".join(response.streaming_content).decode().strip().split("\n\n"):
        name, data = block.split("\n", 1)
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_http_answer_streams_after_the_instant_quoted_answer(kb, alice_api, endpoint):
    events = stream(alice_api, start(alice_api), QUESTION)
    names = [name for name, _ in events]
    assert names == ["extractive", "delta", "delta", "delta", "done"]
    quoted = events[0][1]
    assert quoted["answer"].startswith("Type 2 diabetes mellitus (ICD-10-CM E11): ")
    assert [data["text"] for name, data in events if name == "delta"] == endpoint.pieces
    done = events[-1][1]
    assert done["answer"] == "E11 is type 2 diabetes mellitus [1]."
    assert done["backend"] == "http" and [source["code"] for source in done["sources"]] == ["ICD-10-CM E11"]
    stored = Message.objects.get(pk=done["message_id"])
    assert (stored.text, stored.backend, stored.fell_back) == (done["answer"], "http", False)


@pytest.mark.parametrize("mode", ["error", "silent"])
def test_the_quoted_answer_stands_when_the_model_fails_or_is_silent(kb, alice_api, endpoint, mode):
    endpoint.mode = mode
    started = time.monotonic()
    events = stream(alice_api, start(alice_api), QUESTION)
    assert [name for name, _ in events] == ["extractive", "fallback", "done"]
    assert time.monotonic() - started < 10
    quoted, done = events[0][1], events[-1][1]
    assert done["answer"] == quoted["answer"] and done["sources"] == quoted["sources"]
    stored = Message.objects.get(pk=done["message_id"])
    assert stored.fell_back and stored.text == quoted["answer"]


def test_extractive_backend_streams_the_quoted_answer_and_done(kb, alice_api):
    events = stream(alice_api, start(alice_api), QUESTION)
    assert [name for name, _ in events] == ["extractive", "done"]
    assert events[-1][1]["answer"] == events[0][1]["answer"]
    assert events[-1][1]["backend"] == "extractive"


def test_a_refusal_is_done_at_once_and_bad_input_is_a_json_error(kb, alice_api):
    conversation_id = start(alice_api)
    events = stream(alice_api, conversation_id, "What dose of insulin should I give my patient?")
    assert [name for name, _ in events] == ["done"] and events[0][1]["refused"] is True
    response = alice_api.post(
        "/chat/message/stream", {"conversation_id": conversation_id, "message": ""}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "empty_message"


def test_charlie_cannot_stream_into_alices_conversation(kb, alice_api, charlie_api):
    conversation_id = start(alice_api)
    response = charlie_api.post(
        "/chat/message/stream", {"conversation_id": conversation_id, "message": QUESTION}, format="json"
    )
    assert response.status_code == 404
    assert not Message.objects.filter(conversation_id=conversation_id).exists()
