"""Reads of the tabular app. Every query is filtered by owner: another user's object is simply not found."""

import math
from dataclasses import dataclass

import pyarrow.parquet as pq
from django.db.models import QuerySet
from django.http import Http404

from modelhub.models import PreprocessingData, TrainingRun
from modelhub.storage import resolve_media_path

from .models import CleaningPlan, Dataset

PREVIEW_ROWS_PER_PAGE = 50


def dataset_list_for_user(*, user) -> QuerySet[Dataset]:
    return Dataset.objects.filter(owner=user).order_by("-created_at", "-id")


def dataset_get_for_user(*, user, dataset_id) -> Dataset:
    dataset = Dataset.objects.filter(owner=user, pk=dataset_id).first() if str(dataset_id).isdigit() else None
    if dataset is None:
        raise Http404("No such dataset.")
    return dataset


def cleaning_plan_list_for_dataset(*, user, dataset: Dataset) -> QuerySet[CleaningPlan]:
    return CleaningPlan.objects.filter(owner=user, dataset=dataset).order_by("-created_at", "-id")


def cleaning_plan_get_for_user(*, user, plan_id) -> CleaningPlan:
    plan = (
        CleaningPlan.objects.select_related("dataset").filter(owner=user, pk=plan_id).first()
        if str(plan_id).isdigit()
        else None
    )
    if plan is None:
        raise Http404("No such cleaning plan.")
    return plan


def feature_selection_saved_for(
    *, user, dataset: Dataset, target: str, cleaning_plan: CleaningPlan | None = None
) -> PreprocessingData | None:
    """The saved feature selection the next run of `dataset` for `target` applies, or None.

    A selection is saved on an applied cleaning plan (ranked, or the clinician's own choice of columns). The run's
    own plan's selection wins; otherwise the most recently saved one for this dataset and outcome.
    """
    rows = [
        row
        for row in PreprocessingData.objects.select_related("cleaning_plan").filter(
            user=user, run__isnull=True, cleaning_plan__dataset=dataset, cleaning_plan__target=target
        )
        if row.selected_columns
    ]
    if not rows:
        return None

    def preference(row: PreprocessingData) -> tuple[bool, str]:
        saved_at = (row.feature_selector_config or {}).get("saved_at") or row.created_at.isoformat()
        return (cleaning_plan is not None and row.cleaning_plan_id == cleaning_plan.pk, str(saved_at))

    return max(rows, key=preference)


def training_run_features(*, run: TrainingRun) -> list[str] | None:
    """The predictors (dataset columns) a tabular run's models were trained on; None for other kinds of run."""
    if run.kind != TrainingRun.Kind.TABULAR:
        return None
    features = (run.config or {}).get("features")
    if features is None:
        # Runs started before the list was recorded in their config: the columns their worker gave the models.
        features = PreprocessingData.objects.filter(run=run).values_list("selected_columns", flat=True).first()
    return [str(feature) for feature in features] if features is not None else None


def _parquet_file(dataset: Dataset) -> pq.ParquetFile:
    path = resolve_media_path(dataset.parquet_name, owner_id=dataset.owner_id)
    if path is None or not path.exists():
        raise Http404("The stored copy of this dataset is missing.")
    return pq.ParquetFile(path)


@dataclass(frozen=True)
class PreviewPage:
    """One page of a dataset's rows, as display strings."""

    number: int
    n_pages: int
    first_row: int
    columns: list[str]
    rows: list[list[str]]

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.n_pages


def _display(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def dataset_preview(*, dataset: Dataset, page: int = 1, per_page: int = PREVIEW_ROWS_PER_PAGE) -> PreviewPage:
    """Rows of one page, read from only the parquet row groups that hold them (large files stay cheap)."""
    parquet = _parquet_file(dataset)
    n_rows = parquet.metadata.num_rows
    n_pages = max(1, math.ceil(n_rows / per_page))
    page = min(max(1, page), n_pages)
    start, stop = (page - 1) * per_page, min(page * per_page, n_rows)
    groups, offset, group_start = [], 0, None
    for index in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(index).num_rows
        if offset + size > start and offset < stop:
            groups.append(index)
            group_start = offset if group_start is None else group_start
        offset += size
    rows: list[list[str]] = []
    columns = [str(name) for name in parquet.schema_arrow.names]
    if groups:
        table = parquet.read_row_groups(groups).slice(start - group_start, stop - start)
        # Index columns pandas stored (e.g. "__index_level_0__") are not the user's data.
        names = [name for name in table.column_names if not name.startswith("__index_level_")]
        columns = names
        data = table.select(names).to_pydict()
        rows = [[_display(data[name][i]) for name in names] for i in range(table.num_rows)]
    return PreviewPage(number=page, n_pages=n_pages, first_row=start + 1, columns=columns, rows=rows)
