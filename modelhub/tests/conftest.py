from pathlib import Path

import pytest


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """A MEDIA_ROOT of this test's own, so files never leak between tests."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def write_artifact(media_root):
    def write(user, name: str, content: bytes = b"model-bytes") -> str:
        path = media_root / str(user.pk) / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return f"{user.pk}/models/{name}"

    return write
