"""Health checks of the chatbot: the vector store, the embedding model and the answer generator.

Each bounds its own wait: the embedding check never loads the model (that can take seconds) but reports whether
it is loaded in this process and whether its files are there; the generator check pings an HTTP endpoint with a
short timeout.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

from deepmed.health import DEGRADED, DOWN, NOT_CONFIGURED, OK, register_check

GENERATOR_PING_TIMEOUT_S = 2.0


def check_vector_store() -> dict:
    from .vectorstore import get_vector_store

    store = get_vector_store()
    return {"status": OK, "backend": store.name, "database": store.alias, "chunks": store.count()}


def check_embedding_model() -> dict:
    from .rag import embedding

    try:
        path = (
            Path(settings.EMBEDDING_MODEL_PATH)
            if settings.EMBEDDING_MODEL_PATH
            else embedding.default_embedding_model_path()
        )
    except embedding.ModelUnavailable as exc:
        return {"status": DOWN, "detail": str(exc)}
    if not (path / "config.json").is_file():
        return {
            "status": DOWN,
            "path": str(path),
            "detail": f"No sentence-transformers model at {path}: fix EMBEDDING_MODEL_PATH.",
        }
    resolved = str(path.resolve())
    # Loading takes seconds, so the check only says whether this process has it loaded already.
    loaded = any(key[0] == resolved for key in list(embedding._embedders))
    return {"status": OK, "path": str(path), "loaded_in_this_process": loaded}


def check_generator() -> dict:
    from .generation import generator_backend_name

    backend = generator_backend_name()
    result = {"status": OK, "backend": backend, "fallback": "extractive"}
    if backend == "http":
        url = settings.LLM_BASE_URL.rstrip("/") + "/models"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - operator's URL
        if settings.LLM_API_KEY:
            request.add_header("Authorization", f"Bearer {settings.LLM_API_KEY}")
        try:
            with urllib.request.urlopen(request, timeout=GENERATOR_PING_TIMEOUT_S) as response:  # noqa: S310
                result["endpoint_status"] = response.status
        except urllib.error.HTTPError as exc:
            # Any HTTP answer means the server is up; some servers have no /models route.
            result["endpoint_status"] = exc.code
        except (urllib.error.URLError, OSError) as exc:
            return {
                **result,
                "status": DEGRADED,
                "detail": f"LLM_BASE_URL does not answer ({exc}); answers fall back to extractive quotes.",
            }
    elif backend == "extractive" and settings.CHAT_GENERATOR in {"http", "local"}:
        result["status"] = NOT_CONFIGURED
        result["detail"] = f"CHAT_GENERATOR={settings.CHAT_GENERATOR} is not usable here; extractive answers are used."
    return result


register_check("vector_store", check_vector_store)
register_check("embedding_model", check_embedding_model)
register_check("generator", check_generator)
