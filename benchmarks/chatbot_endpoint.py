"""End-to-end latency of POST /chat/message (masking, safety, hybrid retrieval, generation, both turns stored) per
generator backend, through Django's test client against a small knowledge base in a throwaway SQLite database.

    .venv/bin/python benchmarks/chatbot_endpoint.py [--limit 50] [--rounds 5] [--stub-delay-ms 0] [--local]

Backends: extractive; http against a stub OpenAI-compatible server on 127.0.0.1 (it answers at once, or after
--stub-delay-ms, so the figure is the endpoint's own overhead plus the simulated model); local SmolLM2 only with
--local (minutes on a CPU). The baseline printed first is knowledge_search alone (the retrieval every backend
shares), so what each backend adds on top is visible in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "What does ICD-10 code E11 cover?",
    "How do I train a model on my CSV?",
    "What is shigellosis?",
    "How do I upload a dataset?",
    "What does code A00 cover?",
    "How do I get an API token?",
]


def percentiles(seconds: list[float]) -> str:
    milliseconds = np.array(seconds) * 1000
    return f"p50 {np.percentile(milliseconds, 50):8.1f} ms   p95 {np.percentile(milliseconds, 95):8.1f} ms"


def stub_server(delay_s: float) -> ThreadingHTTPServer:
    """An OpenAI-compatible /chat/completions that cites the first passage: enough for the http generator."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if delay_s:
                time.sleep(delay_s)
            body = json.dumps(
                {
                    "id": "stub",
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "According to the knowledge base [1]."},
                        }
                    ],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=50, help="ICD-10-CM categories loaded (the guide is whole)")
    parser.add_argument("--rounds", type=int, default=5, help="times each question is asked per backend")
    parser.add_argument("--stub-delay-ms", type=float, default=0.0, help="simulated model time of the http stub")
    parser.add_argument("--local", action="store_true", help="also time the local SmolLM2 generator (slow)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="deepmed-chat-bench-"))
    os.environ.update(
        DEBUG="1",
        VAR_DIR=str(workdir),
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        HF_HUB_OFFLINE="1",
        # The endpoint's per-user throttle would turn the benchmark into a 429 count.
        CHAT_THROTTLE_RATE="1000000/min",
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from chatbot import generation, services
    from chatbot.knowledge_sources import default_sources
    from chatbot.models import Message

    # Django's test client calls itself "testserver", which production-like ALLOWED_HOSTS do not list.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    sources = default_sources(only=["guide"], limit=None) + default_sources(only=["icd10"], limit=args.limit)
    report = services.knowledge_base_load(sources=sources)
    print(
        f"knowledge base: {len(sources)} documents, {report.chunks} passages, loaded in "
        f"{time.perf_counter() - started:.1f} s (guide + {args.limit} ICD-10-CM categories)"
    )
    user = get_user_model().objects.create_user(email="bench@example.org", password="x" * 20)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")

    services.knowledge_search(user=user, query=QUESTIONS[0])  # warm: embedder, vector matrix
    baseline = []
    for _ in range(args.rounds):
        for question in QUESTIONS:
            began = time.perf_counter()
            services.knowledge_search(user=user, query=question)
            baseline.append(time.perf_counter() - began)
    print(f"{'baseline: knowledge_search only':38s} n={len(baseline):3d}  {percentiles(baseline)}")

    server = stub_server(args.stub_delay_ms / 1000)
    backends = [("extractive", {}), ("http", {"LLM_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1"})]
    if args.local:
        backends.append(("local", {}))
    for backend, overrides in backends:
        settings.CHAT_GENERATOR = backend
        settings.LLM_BASE_URL = overrides.get("LLM_BASE_URL", "")
        settings.LLM_MODEL = "stub"
        generation.reset_generators()
        conversation_id = client.post("/chat/start", {}, format="json").json()["conversation_id"]
        rounds = 1 if backend == "local" else args.rounds
        # One untimed question builds the generator (and, for local, waits for nothing: it may fall back).
        client.post("/chat/message", {"conversation_id": conversation_id, "message": QUESTIONS[0]}, format="json")
        timings, used, fell_back = [], set(), 0
        for _ in range(rounds):
            for question in QUESTIONS:
                began = time.perf_counter()
                response = client.post(
                    "/chat/message", {"conversation_id": conversation_id, "message": question}, format="json"
                )
                timings.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise SystemExit(f"{backend}: HTTP {response.status_code} {response.content[:300]!r}")
                body = response.json()
                used.add(body.get("backend", "?"))
                fell_back += Message.objects.filter(pk=body["message_id"], fell_back=True).exists()
        print(
            f"{'/chat/message ' + backend:38s} n={len(timings):3d}  {percentiles(timings)}   "
            f"answered by {','.join(sorted(used))}, fell back {fell_back}x"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
