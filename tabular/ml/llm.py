"""Optional LLM refinement of a cleaning plan, from metadata only.

The prompt is built from column names, kinds, missing shares, unique counts and flags —
never from cell values: no top categories, no minimum/maximum/mean, no examples. The
answer is parsed as a small JSON list of edits; anything malformed, unknown or unsafe
(keeping a column dropped as personal data or an identifier, touching the target) makes
the whole answer void, and the rule-based plan stands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .cleaning import (
    ACTIONS,
    ENCODE_METHODS,
    IMPUTE_METHODS,
    OUTLIER_METHODS,
    SCALE_METHODS,
    CleaningPlan,
    PlanError,
)
from .profiling import DatasetProfile

__all__ = ["build_refinement_prompt", "parse_refinement", "refine_plan_with_llm"]

EDITABLE_FIELDS = {
    "action": ACTIONS,
    "impute": IMPUTE_METHODS,
    "outliers": OUTLIER_METHODS,
    "encode": ENCODE_METHODS,
    "scale": SCALE_METHODS,
}
MAX_EDITS = 200
PROTECTED_FLAGS = {"personal_data", "identifier"}


def _column_metadata(profile: DatasetProfile, plan: CleaningPlan) -> list[dict[str, Any]]:
    planned = {column.name: column for column in plan.columns}
    rows = []
    for column in profile.columns:
        entry: dict[str, Any] = {
            "name": column.name,
            "kind": column.kind,
            "missing_share": round(column.missing_share, 3),
            "n_unique": column.n_unique,
            "flags": list(column.flags),
        }
        decision = planned.get(column.name)
        if column.name == plan.target:
            entry["role"] = "target"
        elif decision is not None:
            entry["plan"] = {
                "action": decision.action,
                "impute": decision.impute,
                "outliers": decision.outliers,
                "encode": decision.encode,
                "scale": decision.scale,
            }
        rows.append(entry)
    return rows


def build_refinement_prompt(profile: DatasetProfile, plan: CleaningPlan) -> str:
    """The instruction and the dataset's metadata (no cell values) for a plan-refining model."""
    if not isinstance(profile, DatasetProfile) or not isinstance(plan, CleaningPlan):
        raise TypeError("build_refinement_prompt takes a DatasetProfile and a CleaningPlan")
    metadata = {
        "n_rows": profile.n_rows,
        "target": plan.target,
        "columns": _column_metadata(profile, plan),
    }
    allowed = {field: list(values) for field, values in EDITABLE_FIELDS.items()}
    return (
        "You review a data-cleaning plan for a medical classification dataset. "
        "You see only column metadata, never patient values.\n"
        "Suggest changes only where the plan is clearly improvable (for example median instead of mean "
        "for skewed measurements, dropping a near-constant column, clipping outliers).\n"
        "Never keep a column flagged personal_data or identifier, and never change the target.\n"
        f"Allowed fields and values: {json.dumps(allowed)}\n"
        'Answer with JSON only: {"edits": [{"column": "<name>", "field": "<field>", "value": "<value>", '
        '"reason": "<short reason>"}]} — or {"edits": []} when the plan is fine.\n'
        f"Dataset metadata: {json.dumps(metadata, ensure_ascii=False)}\n"
    )


def _extract_json(answer: str) -> Any:
    answer = answer.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", answer, flags=re.DOTALL)
    if fenced:
        answer = fenced.group(1).strip()
    start = answer.find("{")
    end = answer.rfind("}")
    if start == -1 or end <= start:
        raise ValueError("no JSON object in the answer")
    return json.loads(answer[start : end + 1])


def parse_refinement(answer: str, plan: CleaningPlan, profile: DatasetProfile) -> CleaningPlan:
    """Apply the answer's edits to a copy of `plan`; raise `ValueError` if any edit is not allowed."""
    document = _extract_json(answer)
    edits = document.get("edits") if isinstance(document, dict) else None
    if not isinstance(edits, list) or len(edits) > MAX_EDITS:
        raise ValueError("the answer has no list of edits")
    columns = {column.name: replace(column) for column in plan.columns}
    flags = {column.name: set(column.flags) for column in profile.columns}
    for edit in edits:
        if not isinstance(edit, dict):
            raise ValueError("an edit is not an object")
        name, field_name, value = edit.get("column"), edit.get("field"), edit.get("value")
        if name == plan.target or name not in columns:
            raise ValueError(f"edit names an unknown column or the target: {name!r}")
        if field_name not in EDITABLE_FIELDS or value not in EDITABLE_FIELDS[field_name]:
            raise ValueError(f"edit sets an unknown field or value: {field_name!r}={value!r}")
        column = columns[name]
        if field_name == "action" and value == "keep" and flags.get(name, set()) & PROTECTED_FLAGS:
            raise ValueError(f"edit would keep a protected column: {name!r}")
        setattr(column, field_name, value)
        reason = edit.get("reason")
        if isinstance(reason, str) and reason.strip():
            column.reason = f"{column.reason}; suggested: {reason.strip()[:200]}" if column.reason else reason[:200]
    refined = CleaningPlan(
        target=plan.target,
        columns=[columns[column.name] for column in plan.columns],
        options=replace(plan.options),
        row_steps=dict(plan.row_steps),
    )
    try:
        refined.validate()
    except PlanError as error:
        raise ValueError(error.message) from error
    return refined


def refine_plan_with_llm(plan: CleaningPlan, profile: DatasetProfile, complete: Callable[[str], str]) -> CleaningPlan:
    """Ask `complete` (prompt → text) to refine the plan; any invalid or failed answer keeps the original plan."""
    prompt = build_refinement_prompt(profile, plan)
    try:
        answer = complete(prompt)
    except Exception:  # an optional helper that fails must not stop planning; the rule-based plan is complete
        return plan
    if not isinstance(answer, str):
        return plan
    try:
        return parse_refinement(answer, plan, profile)
    except (ValueError, TypeError):
        return plan
