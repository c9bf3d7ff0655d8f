"""`{% load tabular_pages %}`: small read-only shapes the tabular pages need from profiles (no queries, no rows)."""

from django import template

from tabular.ml.profiling import zero_as_missing_note

register = template.Library()


@register.filter
def class_balance(target: dict | None) -> list[dict]:
    """The outcome's classes as rows of value, count and share of the labelled rows, largest first."""
    counts = (target or {}).get("class_counts") or []
    total = sum(int(item.get("count") or 0) for item in counts)
    return [
        {"value": item.get("value"), "count": int(item.get("count") or 0), "share": item["count"] / total}
        for item in counts
        if total
    ]


@register.filter
def suspect_zero_columns(columns: list[dict]) -> list[dict]:
    """Profile columns whose zeros look like missing values, each with the sentence that says so."""
    return [
        {**column, "zero_note": zero_as_missing_note(column["name"], column["suspect_zeros"])}
        for column in columns
        if column.get("suspect_zeros")
    ]
