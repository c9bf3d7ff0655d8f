"""Writing and loading model artefacts: the platform loads only files it wrote, checked by SHA-256 first.

An artefact is written to a temporary name in the owner's folder and renamed into place, so a crash never leaves
a half-written file under a name a row points at. Loading resolves the stored name inside the owner's folder,
recomputes the SHA-256 and compares it with the row before any byte is unpickled.
"""

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import joblib

from deepmed.exceptions import ApplicationError

from .storage import media_root, model_artifact_path, resolve_media_path

_CHUNK = 1024 * 1024


class ArtifactIntegrityError(ApplicationError):
    """The stored artefact is missing or is not the file the platform wrote: refuse to load it."""

    status_code = 409
    code = "artifact_integrity"


@dataclass(frozen=True)
class StoredArtifact:
    """Where an artefact was written and what it was: copy these onto the TrainingModel row."""

    file_name: str
    sha256: str
    size: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_write(
    *, user_id: int, run_id: int, write: Callable[[Path], None], suffix: str = ".joblib"
) -> StoredArtifact:
    """Call `write(tmp_path)` to produce the file, then move it under a new server-made name atomically."""
    name = model_artifact_path(user_id=user_id, run_id=run_id, suffix=suffix)
    final = media_root() / name
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=".partial-", suffix=suffix)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        sha = file_sha256(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return StoredArtifact(file_name=name, sha256=sha, size=size)


def artifact_save_object(obj, *, user_id: int, run_id: int) -> StoredArtifact:
    """Pickle a fitted estimator (or a dict bundle around one) with joblib."""
    return artifact_write(user_id=user_id, run_id=run_id, write=lambda path: joblib.dump(obj, path, compress=3))


def artifact_verified_path(model) -> Path:
    """The artefact of a TrainingModel row, after checking it is inside the owner's folder and unchanged."""
    path = resolve_media_path(model.file_name, owner_id=model.user_id) if model.file_name else None
    if path is None or not path.is_file():
        raise ArtifactIntegrityError(
            "This model's file is missing. It may have been removed by retention; train the model again.",
            code="artifact_missing",
            status_code=410,
        )
    if not model.sha256 or file_sha256(path) != model.sha256:
        raise ArtifactIntegrityError(
            "This model's file does not match the checksum recorded when it was trained, so it will not be loaded. "
            "Ask an administrator to check the storage."
        )
    return path


def artifact_load_object(model):
    """Unpickle a joblib artefact only after `artifact_verified_path` has accepted it."""
    return joblib.load(artifact_verified_path(model))
