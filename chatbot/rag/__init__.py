"""Retrieval-augmented generation core: chunking, sources, embeddings, indexes, fusion, safety, generation.

Pure Python (NumPy, sentence-transformers, transformers): nothing here imports Django, so the pieces are testable
in milliseconds and reusable from a notebook or a benchmark. The Django app stores what these functions return.
"""
