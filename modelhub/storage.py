"""Where artefacts live under MEDIA_ROOT, and which stored names may be touched.

Every path read from a database row goes through `resolve_media_path`, so a row can never make the platform
read or delete a file outside MEDIA_ROOT (an absolute path, `..`, or a symbolic link pointing elsewhere).
"""

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT).resolve()


def model_artifact_path(*, user_id: int, run_id: int, suffix: str = ".joblib") -> str:
    """A new server-made name for a model artefact, relative to MEDIA_ROOT: `<user id>/models/<run id>/<uuid><suffix>`.

    Store the returned name in `TrainingModel.file_name`; open it with `resolve_media_path`.
    """
    if not _SAFE_SUFFIX.match(suffix):
        raise ValueError(f"Unsafe artefact suffix {suffix!r}")
    return f"{int(user_id)}/models/{int(run_id)}/{uuid.uuid4().hex}{suffix}"


def resolve_media_path(name: str, *, owner_id: int | None = None) -> Path | None:
    """The absolute path of a stored name, or None when it would leave MEDIA_ROOT (or the owner's folder).

    Symbolic links are resolved first, so a link inside MEDIA_ROOT that points outside is refused too.
    """
    if not name or "\x00" in name:
        return None
    root = media_root()
    base = root / str(int(owner_id)) if owner_id is not None else root
    candidate = Path(name)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if path == base or not path.is_relative_to(base):
        return None
    return path


def path_size(path: Path) -> int:
    """Bytes used by a file, or by every regular file below a directory; links are not followed."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(child.lstat().st_size for child in path.rglob("*") if child.is_file() and not child.is_symlink())
    return 0


@dataclass(frozen=True)
class MediaReference:
    """A row that names a file under MEDIA_ROOT."""

    source: str
    row_id: int | str
    name: str
    owner_id: int | None = None


_reference_sources: dict[str, Callable[[], Iterable[MediaReference]]] = {}


def register_media_references(source: str, func: Callable[[], Iterable[MediaReference]]) -> None:
    """Tell the storage check about a table that stores files (call it from your AppConfig.ready).

    Files nobody references are reported as orphans, so every app that writes under MEDIA_ROOT registers here.
    """
    _reference_sources[source] = func


def media_references() -> Iterable[MediaReference]:
    for func in list(_reference_sources.values()):
        yield from func()


def _training_model_references() -> Iterable[MediaReference]:
    from .models import TrainingModel

    rows = TrainingModel.objects.values_list("id", "user_id", "file_name", "model_url").order_by("id")
    for row_id, user_id, file_name, model_url in rows.iterator(chunk_size=2000):
        model = TrainingModel(id=row_id, user_id=user_id, file_name=file_name, model_url=model_url)
        for name in model.artifact_references():
            yield MediaReference(source="training_models", row_id=row_id, name=name, owner_id=user_id)


register_media_references("training_models", _training_model_references)
