"""End-to-end latency of POST /chat/message (masking, safety, hybrid retrieval, generation, both turns stored) per
generator backend, through Django's test client against a small knowledge base in a throwaway SQLite database.

    .venv/bin/python benchmarks/chatbot_endpoint.py [--limit 50] [--rounds 5] [--stub-delay-ms 0] [--local]

Backends: extractive; http against a stub OpenAI-compatible server on 127.0.0.1 (it answers at once, or after
--stub-delay-ms, so the figure is the endpoint's own overhead plus the simulated model); local SmolLM2 only with
--local (minutes on a CPU). The baseline printed first is knowledge_search alone (the retrieval every backend
shares), so what each backend adds on top is visible in the same run.

Then the extractive generator's sentence vector cache (chatbot/rag/embedding.py), cold and warm, beside the bare
library: SentenceTransformer.encode of the same question + passage sentences the generator scores. "cold" empties
the cache before the message, which is what every message cost before the cache; "warm" asks the same question
again (every text a hit): a new question about popular passages costs warm + "encode the question alone".
--torch-threads N sets torch's intra-op threads first (deepmed/torch_threads.py; gunicorn workers use 1).

Measured on the 2-core machine shared with other work (load average 2.2-4.4), guide + 50 ICD-10-CM categories, 18
sentences scored per answer, --rounds 4 (p50 / p95 ms):

    torch threads              bare encode   question alone   cache cold    cache warm
    2 (torch's default)        1108 / 1977       472 / 504    1654 / 2211    496 / 668
    1 (TORCH_NUM_THREADS=1)     582 /  966        10 /  20     535 / 1029     26 /  44

Cold is what every message cost before the cache (the code before it: p50 222 ms at load ~2.5, 753 ms at a busier
moment). Two OpenMP threads on two busy cores wait for each other: even one short question took ~470 ms.
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
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.torch_threads:
        os.environ["TORCH_NUM_THREADS"] = str(args.torch_threads)

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
    import torch
    from django.conf import settings

    from deepmed.torch_threads import apply_torch_threads

    apply_torch_threads(default=None)
    print(f"torch intra-op threads: {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}")
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
    sentence_cache_section(client, user, args.rounds)


def sentence_cache_section(client, user, rounds: int) -> None:
    """The extractive answer with the sentence cache emptied before each message (cold) and kept (warm), beside
    SentenceTransformer.encode of the same texts."""
    from django.conf import settings

    from chatbot import generation, services
    from chatbot.rag.chunking import split_sentences
    from chatbot.rag.embedding import sentence_cache

    settings.CHAT_GENERATOR = "extractive"
    generation.reset_generators()
    embedder = services.embedder_get()
    cache = sentence_cache(embedder)
    conversation_id = client.post("/chat/start", {}, format="json").json()["conversation_id"]

    def ask(question: str) -> float:
        began = time.perf_counter()
        response = client.post(
            "/chat/message", {"conversation_id": conversation_id, "message": question}, format="json"
        )
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise SystemExit(f"extractive: HTTP {response.status_code} {response.content[:300]!r}")
        return elapsed

    # The texts the generator scores for each question: the question and the retrieved passages' sentences.
    texts = {}
    for question in QUESTIONS:
        passages = services.knowledge_search(user=user, query=question)
        sentences = [
            sentence for passage in passages for sentence in split_sentences(passage.text) if len(sentence) >= 25
        ]
        texts[question] = [question, *sentences]
    # Interleaved per question, so that the shared machine's load weighs on every row alike.
    bare, bare_question, cold, warm = [], [], [], []
    hits = misses = 0
    for _ in range(rounds):
        for question in QUESTIONS:
            began = time.perf_counter()
            embedder.model.encode(
                texts[question],
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            bare.append(time.perf_counter() - began)
            began = time.perf_counter()
            embedder.model.encode([question], normalize_embeddings=True, show_progress_bar=False)
            bare_question.append(time.perf_counter() - began)
            cache.clear()
            cold.append(ask(question))
            hits_before, misses_before = cache.hits, cache.misses
            warm.append(ask(question))
            hits, misses = hits + cache.hits - hits_before, misses + cache.misses - misses_before
    sentences = np.mean([len(value) - 1 for value in texts.values()])
    print(f"sentences scored per answer: {sentences:.0f} (mean over the {len(QUESTIONS)} questions)")
    print(f"{'bare: SentenceTransformer.encode':38s} n={len(bare):3d}  {percentiles(bare)}   (question + sentences)")
    print(f"{'bare: encode the question alone':38s} n={len(bare_question):3d}  {percentiles(bare_question)}")
    print(f"{'/chat/message extractive, cache cold':38s} n={len(cold):3d}  {percentiles(cold)}")
    print(
        f"{'/chat/message extractive, cache warm':38s} n={len(warm):3d}  {percentiles(warm)}   "
        f"cache hits {hits}, misses {misses} (a new question adds one miss: the row above)"
    )


if __name__ == "__main__":
    main()
