"""The model report (model card) of a tabular model: TRIPOD+AI items that apply, with server-side SVG charts.

Charts are drawn by matplotlib (Agg) into SVG strings inserted into the page as they are: the SVG is produced
here from numbers in the bundle, never from user text, so it carries no markup a user controlled.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from django.utils.safestring import mark_safe  # noqa: E402

from .hub import model_days_left  # noqa: E402

METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision",
    "f1": "F1",
    "brier": "Brier score (lower is better)",
}


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    # Drop the XML prolog and DOCTYPE: the SVG is embedded in an HTML page.
    return text[text.index("<svg") :]


def _curve_chart(x, y, *, xlabel: str, ylabel: str, title: str, diagonal: bool) -> str:
    figure, axes = plt.subplots(figsize=(3.6, 3.2))
    axes.plot(x, y, color="#1f6feb", linewidth=2)
    if diagonal:
        axes.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    return _svg(figure)


def report_charts(bundle: dict[str, Any]) -> list[dict[str, str]]:
    """ROC, precision-recall and calibration curves of the hold-out set, as inline SVG."""
    curves = bundle.get("curves") or {}
    charts = []
    roc = curves.get("roc") or {}
    if roc.get("fpr") and roc.get("tpr"):
        svg = _curve_chart(
            roc["fpr"], roc["tpr"], xlabel="1 − specificity", ylabel="Sensitivity", title="ROC", diagonal=True
        )
        charts.append({"title": "ROC curve", "svg": mark_safe(svg)})  # noqa: S308 (our own matplotlib SVG)
    pr = curves.get("pr") or {}
    if pr.get("recall") and pr.get("precision"):
        svg = _curve_chart(
            pr["recall"], pr["precision"], xlabel="Recall", ylabel="Precision", title="Precision-recall", diagonal=False
        )
        charts.append({"title": "Precision-recall curve", "svg": mark_safe(svg)})  # noqa: S308
    calibration = curves.get("calibration") or {}
    if calibration.get("prob_pred") and calibration.get("prob_true"):
        svg = _curve_chart(
            calibration["prob_pred"],
            calibration["prob_true"],
            xlabel="Predicted probability",
            ylabel="Observed frequency",
            title="Calibration",
            diagonal=True,
        )
        charts.append({"title": "Calibration curve", "svg": mark_safe(svg)})  # noqa: S308
    return charts


def _performance_rows(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    metrics = bundle.get("metrics") or {}
    intervals = bundle.get("intervals") or {}
    rows = []
    for key, label in METRIC_LABELS.items():
        if key not in metrics or metrics[key] is None:
            continue
        low, high = (intervals.get(key) or [None, None])[:2]
        rows.append({"key": key, "label": label, "value": metrics[key], "low": low, "high": high})
    return rows


def _confusion(bundle: dict[str, Any]) -> dict[str, Any] | None:
    matrix = bundle.get("confusion_matrix") or {}
    if not matrix.get("labels") or not matrix.get("matrix"):
        return None
    return {
        "labels": matrix["labels"],
        "rows": [
            {"label": label, "cells": cells} for label, cells in zip(matrix["labels"], matrix["matrix"], strict=False)
        ],
    }


def _cleaning_steps(bundle: dict[str, Any]) -> list[str]:
    """Plain-language lines about missing data and cleaning, from the cleaning report when it has them."""
    report = bundle.get("cleaning_report") or {}
    lines = []
    for key in ("steps", "actions", "summary", "messages"):
        value = report.get(key)
        if isinstance(value, list):
            lines.extend(str(item.get("message") or item) if isinstance(item, dict) else str(item) for item in value)
        elif isinstance(value, str):
            lines.append(value)
    return lines


def model_report_context(*, model, bundle: dict[str, Any], standalone: bool = False) -> dict[str, Any]:
    """Everything templates/modelhub/report.html shows; `standalone` for the copy inside the download ZIP."""
    schema = bundle["schema"]
    validation = bundle.get("validation") or {}
    class_counts = validation.get("class_counts") or {}
    total = sum(class_counts.values()) or 0
    return {
        "model": model,
        "bundle": bundle,
        "standalone": standalone,
        "days_left": model_days_left(model),
        "predictors": schema.columns,
        "performance": _performance_rows(bundle),
        "confusion": _confusion(bundle),
        "charts": report_charts(bundle),
        "class_balance": [
            {"label": label, "count": count, "share": (count / total if total else None)}
            for label, count in class_counts.items()
        ],
        "validation": validation,
        "cleaning_lines": _cleaning_steps(bundle),
        "cleaning_report": bundle.get("cleaning_report") or {},
        "versions": sorted((bundle.get("versions") or {}).items()),
        "best_params": sorted((bundle.get("best_params") or {}).items()),
        "warnings": bundle.get("warnings") or [],
        "threshold_info": bundle.get("threshold_info") or {},
    }
