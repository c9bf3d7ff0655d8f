"""Reads for pages and the API. Every list is filtered to its owner."""

import os
from pathlib import Path

from django.db.models import QuerySet

from .models import TrainingModel, TrainingRun
from .storage import media_references, media_root, resolve_media_path

# The staff report lists this many paths per problem; the counts cover everything.
REPORT_LIST_LIMIT = 200


def training_run_list_for_user(*, user) -> QuerySet[TrainingRun]:
    """The user's training runs, newest first."""
    return TrainingRun.objects.filter(user=user).order_by("-created_at", "-id")


def training_model_list_for_user(*, user) -> QuerySet[TrainingModel]:
    """The user's trained models with their run, newest first."""
    return TrainingModel.objects.filter(user=user).select_related("run").order_by("-created_at", "-id")


def _walk_files(root: Path):
    """Every regular file below root, links not followed (a link is reported as a file of its own)."""
    for directory, _dirnames, filenames in os.walk(root, followlinks=False):
        for filename in filenames:
            yield Path(directory) / filename


def media_storage_report() -> dict:
    """Storage use under MEDIA_ROOT and its integrity: files no row names, and rows whose file is gone."""
    root = media_root()
    referenced: set[Path] = set()
    missing: list[dict] = []
    unsafe: list[dict] = []
    for reference in media_references():
        path = resolve_media_path(reference.name, owner_id=reference.owner_id)
        row = {"source": reference.source, "id": reference.row_id, "name": reference.name}
        if path is None:
            unsafe.append(row)
        elif not path.exists():
            missing.append(row)
        else:
            referenced.add(path)

    total_bytes = 0
    file_count = 0
    bytes_by_user: dict[str, int] = {}
    orphans: list[dict] = []
    orphan_bytes = 0
    if root.is_dir():
        for path in _walk_files(root):
            try:
                size = path.lstat().st_size
            except FileNotFoundError:  # deleted while we walked
                continue
            total_bytes += size
            file_count += 1
            relative = path.relative_to(root)
            top = relative.parts[0] if len(relative.parts) > 1 else ""
            bytes_by_user[top] = bytes_by_user.get(top, 0) + size
            # A reference may name a directory (a multi-file artefact): its files are not orphans.
            if path not in referenced and not any(parent in referenced for parent in path.parents):
                orphan_bytes += size
                orphans.append({"name": str(relative), "size": size})

    problems = len(orphans) + len(missing) + len(unsafe)
    return {
        "status": "ok" if problems == 0 else "degraded",
        "media_root_exists": root.is_dir(),
        "media_root_writable": root.is_dir() and os.access(root, os.W_OK),
        "total_bytes": total_bytes,
        "file_count": file_count,
        "bytes_by_folder": dict(sorted(bytes_by_user.items())),
        "orphans": {"count": len(orphans), "bytes": orphan_bytes, "files": orphans[:REPORT_LIST_LIMIT]},
        "missing": {"count": len(missing), "rows": missing[:REPORT_LIST_LIMIT]},
        "unsafe": {"count": len(unsafe), "rows": unsafe[:REPORT_LIST_LIMIT]},
    }
