"""Models grouped by the run that trained them, each run told by its dataset and outcome (for /my_models).

The model hub does not know what a dataset is; each app that starts runs registers, for its `dataset_type`, a
function that describes a batch of its runs in one query: `{run_id: {"dataset": name, "outcome": words}}`
(`register_run_describer`, called from the app's `AppConfig.ready()`). A run without a describer, or whose dataset
has since been deleted, is still shown, with what the run row itself records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .models import TrainingRun

RunDescriber = Callable[[list[TrainingRun]], dict[int, dict[str, str]]]
_DESCRIBERS: dict[str, RunDescriber] = {}


def register_run_describer(dataset_type: str, describe: RunDescriber) -> None:
    _DESCRIBERS[dataset_type] = describe


def _descriptions(runs: list[TrainingRun]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    by_type: dict[str, list[TrainingRun]] = {}
    for run in runs:
        by_type.setdefault(run.dataset_type, []).append(run)
    for dataset_type, members in by_type.items():
        describe = _DESCRIBERS.get(dataset_type)
        if describe is not None:
            found.update(describe(members))
    return found


def model_rows_by_run(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of /my_models ({"model", ...}) grouped by run, groups in the order their first row comes.

    Each group: {"run", "dataset", "outcome", "rows"}; `dataset` and `outcome` are empty when unknown.
    """
    groups: dict[int, dict[str, Any]] = {}
    for row in rows:
        run = row["model"].run
        group = groups.setdefault(run.pk, {"run": run, "dataset": "", "outcome": "", "rows": []})
        group["rows"].append(row)
    descriptions = _descriptions([group["run"] for group in groups.values()])
    for run_id, group in groups.items():
        group.update(descriptions.get(run_id, {}))
    return list(groups.values())
