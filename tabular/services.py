"""Writes of the tabular app: storing uploads, caching profiles, planning, applying plans and selecting features.

The ML work itself lives in `tabular.ml` (no Django); these functions move bytes and rows around it and make sure
a refused input leaves nothing behind: files are written under temporary names, renamed once complete, and removed
again if anything later fails, including the database write.
"""

import hashlib
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AuditEvent
from deepmed.exceptions import ApplicationError
from deepmed.uploads import refuse_declared_over
from modelhub.models import PreprocessingData
from modelhub.storage import resolve_media_path

from .ml import cleaning, features, io, profiling, selection
from .models import CleaningPlan, Dataset, DatasetProfile

logger = logging.getLogger(__name__)

# The only extensions a stored original can get; chosen from the detected format, never from the client's name.
_EXTENSIONS = {"csv": "csv", "xlsx": "xlsx", "excel": "xlsx", "json": "json"}


def max_upload_bytes() -> int:
    return settings.MAX_UPLOAD_MB * 1024 * 1024


def table_limits() -> io.TableLimits:
    """The size limits of an uploaded table (settings), checked before it is materialised."""
    return io.TableLimits(
        max_columns=settings.MAX_TABLE_COLUMNS,
        max_sheet_cells=settings.MAX_SHEET_CELLS,
        max_sheet_seconds=settings.MAX_SHEET_SECONDS,
    )


def upload_too_large_error(size: int | None = None) -> ApplicationError:
    shown = f" ({size / 1024 / 1024:.1f} MB)" if size else ""
    return ApplicationError(
        f"The file is too large{shown}: the limit is {settings.MAX_UPLOAD_MB} MB. Remove columns or rows you do not "
        "need, or split the file, and upload it again.",
        code="file_too_large",
    )


def refuse_oversized_request(request) -> None:
    """Refuse an oversized table upload by its declared length, before the body is parsed."""
    refuse_declared_over(request, limit_bytes=max_upload_bytes(), error=upload_too_large_error)


# --- files ----------------------------------------------------------------------------------------------------


def _dataset_folder(user_id: int) -> tuple[Path, str]:
    relative = f"{int(user_id)}/datasets"
    return Path(settings.MEDIA_ROOT) / relative, relative


def _remove_quietly(paths) -> None:
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:  # a leftover file is reported by the storage check; the user's answer stands
            logger.error("could not remove %s: %s", path, exc.__class__.__name__)


def _write_atomically(path: Path, write) -> None:
    """Write through a temporary name in the same folder, so the final name only ever holds a complete file."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        _remove_quietly([temporary])


def _column_summary(frame) -> list[dict[str, Any]]:
    missing = frame.isna().sum()
    return [
        {"name": str(name), "dtype": str(frame[name].dtype), "n_missing": int(missing.iloc[position])}
        for position, name in enumerate(frame.columns)
    ]


def _dataset_store(
    *,
    user,
    frame,
    name: str,
    original: bytes | None,
    extension: str | None,
    fields: Mapping[str, Any],
) -> Dataset:
    """Write the original bytes (if any) and the parquet copy, then the row; on any failure remove every file."""
    folder, relative = _dataset_folder(user.pk)
    folder.mkdir(parents=True, exist_ok=True)
    stem = uuid.uuid4().hex
    written: list[Path] = []
    try:
        file_name = ""
        if original is not None:
            original_path = folder / f"{stem}.{extension}"
            _write_atomically(original_path, lambda path: path.write_bytes(original))
            written.append(original_path)
            file_name = f"{relative}/{original_path.name}"
        parquet_path = folder / f"{stem}.parquet"
        _write_atomically(parquet_path, lambda path: io.write_parquet(frame, path))
        written.append(parquet_path)
        with transaction.atomic():
            dataset = Dataset.objects.create(
                owner=user,
                name=name[:255],
                file_name=file_name,
                parquet_name=f"{relative}/{parquet_path.name}",
                n_rows=len(frame),
                n_columns=len(frame.columns),
                columns=_column_summary(frame),
                **fields,
            )
    except BaseException:
        _remove_quietly(written)
        raise
    return dataset


def _delete_files_after_commit(*, owner_id: int, names: list[str]) -> None:
    paths = []
    for name in names:
        path = resolve_media_path(name, owner_id=owner_id)
        if path is None:
            logger.warning("refused to delete %r: it is outside the owner's media folder", name)
        else:
            paths.append(path)
    transaction.on_commit(lambda: _remove_quietly(paths))


# --- datasets -------------------------------------------------------------------------------------------------


def dataset_create(*, user, uploaded_file, name: str | None = None, sheet: str | None = None) -> Dataset:
    """Read an uploaded table and store it: the original bytes with their SHA-256, a parquet copy and a row.

    A file that cannot be read raises ApplicationError (400) with the reader's message; nothing is stored then.
    """
    limit = max_upload_bytes()
    declared = getattr(uploaded_file, "size", None)
    if declared is not None and declared > limit:
        raise upload_too_large_error(declared)
    # One read, capped: a stream without a trustworthy size cannot make us hold more than the limit.
    data = uploaded_file.read(limit + 1)
    if len(data) > limit:
        raise upload_too_large_error()
    client_name = Path(str(getattr(uploaded_file, "name", "") or "")).name[:255]
    try:
        result = io.read_table(data, filename=client_name, sheet=sheet or None, limits=table_limits())
    except io.TableReadError as exc:
        raise ApplicationError(exc.message, code=exc.code) from exc
    extension = _EXTENSIONS.get(str(result.format).lower())
    if extension is None:
        raise ApplicationError(f"Files of type {result.format!r} cannot be stored.", code="unsupported_type")
    display_name = (name or "").strip() or Path(client_name).stem or "Untitled dataset"
    return _dataset_store(
        user=user,
        frame=result.frame,
        name=display_name,
        original=data,
        extension=extension,
        fields={
            "original_filename": client_name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "format": extension,
            "encoding": result.encoding or "",
            "delimiter": result.delimiter or "",
            "sheet": result.sheet or "",
            "sheet_names": list(result.sheet_names or []),
            "read_warnings": [str(warning) for warning in (result.warnings or [])],
            "size_bytes": len(data),
        },
    )


def dataset_delete(*, dataset: Dataset, request=None) -> None:
    """Delete the row (with its profiles and plans) and, once that has committed, its files. Audited."""
    names = dataset.stored_names()
    owner_id = dataset.owner_id
    with transaction.atomic():
        audit_record(
            action=AuditEvent.Action.DELETED,
            request=request,
            target=dataset,
            details={"kind": "dataset", "sha256": dataset.sha256, "n_rows": dataset.n_rows},
        )
        dataset.delete()
        _delete_files_after_commit(owner_id=owner_id, names=names)


def dataset_frame(*, dataset: Dataset):
    """The dataset's parsed table, read back from its parquet copy."""
    path = resolve_media_path(dataset.parquet_name, owner_id=dataset.owner_id)
    if path is None or not path.exists():
        raise ApplicationError(
            "The stored copy of this dataset is missing. Upload the file again.",
            code="dataset_missing",
            status_code=409,
        )
    return io.read_parquet(path)


def _require_column(dataset: Dataset, column: str, *, what: str = "target") -> None:
    if column not in dataset.column_names:
        raise ApplicationError(
            f"The {what} column {column!r} is not in dataset {dataset.name!r}. Choose one of its columns.",
            code="unknown_column",
        )


def dataset_profile_get(*, dataset: Dataset, target: str | None = None) -> dict:
    """The profile for `target` (or none), computed once per dataset and target and then served from the cache."""
    target = target or ""
    if target:
        _require_column(dataset, target)
    cached = DatasetProfile.objects.filter(dataset=dataset, target=target).values_list("profile", flat=True).first()
    if cached is not None:
        return cached
    profile = profiling.profile_frame(dataset_frame(dataset=dataset), target=target or None).to_dict()
    try:
        with transaction.atomic():
            DatasetProfile.objects.create(dataset=dataset, target=target, profile=profile)
    except IntegrityError:
        # Another request profiled the same dataset and target at the same moment; its result is the same.
        pass
    return profile


# Words for the flags that make a column a wrong outcome, as a clinician reads them.
_TARGET_FLAG_WORDS = {
    "personal_data": "looks like personal data (names, contact details, ID or record numbers)",
    "identifier": "looks like an identifier (a different value in almost every row)",
    "high_cardinality": "has too many different values to be an outcome",
}


def dataset_outcome_choice(*, dataset: Dataset) -> dict[str, Any]:
    """The suggested outcome column with its reason, and the columns that must not be one (with their flags).

    `{"suggestion": {"column", "reason", "candidates"}, "flagged": {column: [flag, ...]}}`, from the cached profile.
    """
    profile = profiling.DatasetProfile.from_dict(dataset_profile_get(dataset=dataset))
    flagged = {column.name: list(profiling.target_flags(column)) for column in profile.columns}
    return {
        "suggestion": profiling.suggest_outcome(profile).to_dict(),
        "flagged": {name: flags for name, flags in flagged.items() if flags},
    }


def dataset_target_check(*, dataset: Dataset, target: str, allow_flagged_target: bool = False) -> list[str]:
    """Refuse an outcome column that is an identifier, personal data or many-valued text, unless the user insists.

    The 400 names the flag in its code (the first of personal_data, identifier, high_cardinality) and message, and
    lists every flag in `flags`. Returns the flags of an accepted target (empty for an ordinary column).
    """
    _require_column(dataset, target)
    flags = dataset_outcome_choice(dataset=dataset)["flagged"].get(target, [])
    if flags and not allow_flagged_target:
        words = " and ".join(_TARGET_FLAG_WORDS[flag] for flag in flags)
        raise ApplicationError(
            f"The column {target!r} {words} (flagged {', '.join(flags)}); a model would learn to predict it, not a "
            "clinical outcome. Choose the outcome column, or confirm that this column really is the outcome "
            '(API: "allow_flagged_target": true).',
            code=flags[0],
            extra={"field": "target", "flags": flags},
        )
    return flags


def dataset_extract_features(*, user, parent: Dataset, spec: Mapping[str, Any], name: str | None = None) -> Dataset:
    """Derive new columns on a dataset and store the result as a new version that records its parent."""
    if not isinstance(spec, Mapping) or not spec:
        raise ApplicationError("Give a non-empty `spec` describing the features to derive.", code="invalid_spec")
    frame = dataset_frame(dataset=parent)
    try:
        derived, new_columns = features.extract_features(frame, dict(spec))
    except (ValueError, KeyError, TypeError) as exc:
        raise ApplicationError(
            f"The feature specification was refused: {_exception_text(exc)}", code="invalid_spec"
        ) from exc
    if not new_columns:
        raise ApplicationError("The specification derives no new column.", code="invalid_spec")
    return _dataset_store(
        user=user,
        frame=derived,
        name=(name or "").strip() or f"{parent.name} (derived features)",
        original=None,
        extension=None,
        fields={
            "original_filename": parent.original_filename,
            # A derived version has no uploaded original: its fingerprint is its parent's, which it came from.
            "sha256": parent.sha256,
            "format": Dataset.Format.PARQUET,
            "size_bytes": 0,
            "parent": parent,
            "derivation": {"spec": dict(spec), "new_columns": [str(column) for column in new_columns]},
        },
    )


def _exception_text(exc: BaseException) -> str:
    # KeyError's str() wraps the message in quotes; the others are already plain.
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


# --- cleaning plans -------------------------------------------------------------------------------------------


def _cleaning_options(options: Mapping[str, Any]) -> "cleaning.CleaningOptions":
    try:
        checked = cleaning.CleaningOptions.from_dict(dict(options))
        checked.validate()
    except cleaning.PlanError as exc:
        raise ApplicationError(str(exc), code="invalid_option") from exc
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"A planner option has the wrong type: {exc}", code="invalid_option") from exc
    return checked


def cleaning_plan_create(
    *,
    user,
    dataset: Dataset,
    target: str,
    options: Mapping[str, Any] | None = None,
    allow_flagged_target: bool = False,
):
    """The rule-based plan for `target`, made from the dataset's profile only (never its rows), stored as a draft.

    A flagged target (identifier, personal data, high cardinality) is refused unless `allow_flagged_target`.
    """
    dataset_target_check(dataset=dataset, target=target, allow_flagged_target=allow_flagged_target)
    options = dict(options or {})
    profile = profiling.DatasetProfile.from_dict(dataset_profile_get(dataset=dataset, target=target))
    plan = cleaning.plan_cleaning(profile, target, _cleaning_options(options))
    return CleaningPlan.objects.create(owner=user, dataset=dataset, target=target, plan=plan.to_dict(), options=options)


def _merge_plan(stored: dict, changes: Mapping[str, Any], column_names: list[str]) -> dict:
    """Apply per-column edits (matched by name) to the stored plan; a column the dataset lacks is named and refused."""
    merged = dict(stored)
    for key, value in changes.items():
        if key not in ("columns", "id", "target", "dataset", "status"):
            merged[key] = value
    edits = changes.get("columns")
    if edits is None:
        return merged
    if not isinstance(edits, list):
        raise ApplicationError("`columns` must be a list of column settings.", code="invalid_plan")
    by_name = {column["name"]: dict(column) for column in stored.get("columns", [])}
    for edit in edits:
        if not isinstance(edit, Mapping) or "name" not in edit:
            raise ApplicationError("Each entry of `columns` needs the column's `name`.", code="invalid_plan")
        column_name = edit["name"]
        if column_name not in by_name:
            known = column_name in column_names
            why = "is the target" if known else "is not in this dataset"
            raise ApplicationError(
                f"Column {column_name!r} {why}; it cannot be set in the plan.", code="unknown_column"
            )
        by_name[column_name].update(dict(edit))
    merged["columns"] = [by_name[column["name"]] for column in stored.get("columns", [])]
    return merged


def cleaning_plan_update(*, plan: CleaningPlan, changes: Mapping[str, Any]) -> CleaningPlan:
    """Validate the edited plan and store it as a draft again; nothing changes when it is refused."""
    merged = _merge_plan(plan.plan, changes, plan.dataset.column_names)
    try:
        checked = cleaning.CleaningPlan.from_dict(merged)
        checked.validate(known_columns=plan.dataset.column_names)
    except cleaning.PlanError as exc:
        raise ApplicationError(str(exc), code="invalid_plan") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ApplicationError(f"The plan is malformed: {_exception_text(exc)}", code="invalid_plan") from exc
    plan.plan = checked.to_dict()
    plan.status = CleaningPlan.Status.DRAFT
    plan.save(update_fields=["plan", "status", "updated_at"])
    return plan


def _plan_object(plan: CleaningPlan):
    try:
        checked = cleaning.CleaningPlan.from_dict(plan.plan)
        checked.validate(known_columns=plan.dataset.column_names)
    except cleaning.PlanError as exc:
        raise ApplicationError(str(exc), code="invalid_plan") from exc
    return checked


def cleaning_plan_apply(*, plan: CleaningPlan) -> CleaningPlan:
    """Apply the row-level steps once, build the cleaning report and record it in `preprocessing_data`."""
    plan_object = _plan_object(plan)
    try:
        report = cleaning.cleaning_report(dataset_frame(dataset=plan.dataset), plan_object)
    except cleaning.PlanError as exc:
        raise ApplicationError(str(exc), code="invalid_plan") from exc
    with transaction.atomic():
        plan.report = report
        plan.n_rows_before = int(report["n_rows_before"])
        plan.n_rows_after = int(report["n_rows_after"])
        plan.status = CleaningPlan.Status.APPLIED
        plan.applied_at = timezone.now()
        plan.save(update_fields=["report", "n_rows_before", "n_rows_after", "status", "applied_at", "updated_at"])
        PreprocessingData.objects.update_or_create(
            cleaning_plan=plan,
            run=None,
            defaults={
                "user_id": plan.owner_id,
                "cleaner_config": plan.plan,
                "original_columns": plan.dataset.column_names,
                "cleaning_report": report,
            },
        )
    return plan


def preprocessing_for_plan(*, plan: CleaningPlan) -> PreprocessingData | None:
    return PreprocessingData.objects.filter(cleaning_plan=plan, run__isnull=True, user_id=plan.owner_id).first()


def feature_selection_run(
    *, plan: CleaningPlan, method: str, k: int | None = None, threshold: float | None = None, random_state: int = 0
) -> PreprocessingData:
    """Rank the kept columns for the plan's target and store the ranking and the chosen columns.

    The ranking runs on the cleaned rows through the plan's own preprocessing, so the scores describe what
    training will see; each score is attributed back to the dataset column it came from.
    """
    if plan.status != CleaningPlan.Status.APPLIED:
        raise ApplicationError("Apply the cleaning plan before selecting features.", code="plan_not_applied")
    plan_object = _plan_object(plan)
    cleaned, _counts = cleaning.apply_row_steps(dataset_frame(dataset=plan.dataset), plan_object)
    try:
        ranking = selection.rank_plan_columns(cleaned, plan_object, method=method, random_state=random_state)
    except ValueError as exc:  # PlanError is a ValueError too
        raise ApplicationError(str(exc), code="invalid_selection") from exc
    ranking = [(str(feature), float(score)) for feature, score in ranking]
    chosen = _choose(ranking, k=k, threshold=threshold)
    config = {"method": method, "k": k, "threshold": threshold, "ranking": [[f, s] for f, s in ranking]}
    return _store_selection(plan=plan, config=config, selected=chosen)


def _choose(ranking: list[tuple[str, float]], *, k: int | None, threshold: float | None) -> list[str]:
    ordered = sorted(ranking, key=lambda item: item[1], reverse=True)
    if threshold is not None:
        ordered = [item for item in ordered if item[1] >= threshold]
    if k is not None:
        ordered = ordered[:k]
    return [feature for feature, _score in ordered]


def _store_selection(*, plan: CleaningPlan, config: dict, selected: list[str]) -> PreprocessingData:
    with transaction.atomic():
        preprocessing = (
            PreprocessingData.objects.select_for_update()
            .filter(cleaning_plan=plan, run__isnull=True, user_id=plan.owner_id)
            .first()
        )
        if preprocessing is None:
            raise ApplicationError("Apply the cleaning plan before selecting features.", code="plan_not_applied")
        # When it was saved: training applies the latest saved selection of a dataset and outcome.
        preprocessing.feature_selector_config = {**config, "saved_at": timezone.now().isoformat()}
        preprocessing.selected_columns = selected
        preprocessing.save(update_fields=["feature_selector_config", "selected_columns"])
    return preprocessing


def feature_selection_override(*, plan: CleaningPlan, selected: list[str]) -> PreprocessingData:
    """Replace the chosen columns with the clinician's own choice; each must be a column the plan keeps."""
    kept = [column["name"] for column in plan.plan.get("columns", []) if column.get("action") != "drop"]
    unknown = [column for column in selected if column not in kept]
    if unknown:
        raise ApplicationError(
            f"Not a column the plan keeps: {', '.join(map(str, unknown))}. Choose among the kept columns.",
            code="unknown_column",
        )
    if not selected:
        raise ApplicationError("Choose at least one column.", code="no_features")
    preprocessing = preprocessing_for_plan(plan=plan)
    if preprocessing is None:
        raise ApplicationError("Apply the cleaning plan before selecting features.", code="plan_not_applied")
    config = {**(preprocessing.feature_selector_config or {}), "overridden": True}
    # Keep the dataset's column order, so the same choice always reads the same way.
    ordered = [column for column in kept if column in set(selected)]
    return _store_selection(plan=plan, config=config, selected=ordered)
