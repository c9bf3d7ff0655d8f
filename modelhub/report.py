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

from deepmed.labels import label as interface_label  # noqa: E402

from .hub import model_days_left  # noqa: E402

# The interface's words (deepmed.labels), in the order the report lists them.
METRIC_LABELS = {
    key: interface_label(key, "metric")
    for key in ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1")
}
METRIC_LABELS["brier"] = f"{interface_label('brier', 'metric')} (lower is better)"


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
        # Set when a saved feature selection chose the predictors (tabular runs record it in their config).
        "saved_selection": ((model.run.config or {}).get("saved_selection") if model.run_id else None),
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


# ----------------------------------------------------------------------------- image classifiers and anomaly detectors
# These reports read only what training recorded: the model's `metrics` JSON (written by imaging.services at the end
# of a run), the run's `config`, and the dataset's intake checks (copied into `metrics["dataset"]` at training time;
# for older models read from the dataset row while it still exists). Nothing is recomputed or estimated here.

ANOMALY_DETECTOR_LABELS = {
    "reconstruction": "Reconstruction error (autoencoder)",
    "isolation_forest": "Isolation Forest on encoder features",
    "local_outlier_factor": "Local Outlier Factor on encoder features",
    "one_class_svm": "One-Class SVM on encoder features",
}


def _chart(svg: str, title: str) -> dict[str, str]:
    return {"title": title, "svg": mark_safe(svg)}  # noqa: S308 (our own matplotlib SVG, numbers only)


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(item.get("epoch"), item.get(key)) for item in history if item.get(key) is not None]
    return [epoch for epoch, _ in points], [float(value) for _, value in points]


def _learning_curves(history: list[dict], *, best_epoch: int | None, accuracy: bool) -> list[dict[str, str]]:
    """Loss (and, for classifiers, accuracy) per epoch on training and validation images."""
    if not history:
        return []
    panels = [("Loss", "train_loss", "val_loss")]
    if accuracy:
        panels.append(("Accuracy", "train_accuracy", "val_accuracy"))
    charts = []
    for title, train_key, val_key in panels:
        figure, axes = plt.subplots(figsize=(3.8, 3.0))
        for key, label, colour in ((train_key, "training", "#1f6feb"), (val_key, "validation", "#d1242f")):
            epochs, values = _series(history, key)
            if values:
                axes.plot(epochs, values, marker="o", markersize=3, color=colour, linewidth=1.8, label=label)
        if best_epoch:
            axes.axvline(best_epoch, linestyle=":", color="#555555", linewidth=1, label=f"kept (epoch {best_epoch})")
        if title == "Accuracy":
            axes.set_ylim(0, 1.02)
        axes.set_xlabel("Epoch")
        axes.set_ylabel(title)
        axes.set_title(f"{title} per epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend(fontsize="small")
        charts.append(_chart(_svg(figure), f"Learning curve: {title.lower()}"))
    return charts


def _score_histogram(histogram: dict[str, Any]) -> dict[str, str] | None:
    """Validation scores of normal images, binned, with the decision threshold as a red line."""
    counts, edges = histogram.get("counts"), histogram.get("edges")
    if not counts or not edges or len(edges) != len(counts) + 1:
        return None
    figure, axes = plt.subplots(figsize=(5.2, 3.0))
    widths = [edges[i + 1] - edges[i] for i in range(len(counts))]
    axes.bar(edges[:-1], counts, width=widths, align="edge", color="#6ea8fe", edgecolor="#1f6feb", linewidth=0.5)
    threshold = histogram.get("threshold")
    if threshold is not None:
        axes.axvline(float(threshold), color="#d1242f", linewidth=2, label=f"threshold {float(threshold):.4g}")
        axes.legend(fontsize="small")
    axes.set_xlabel("Anomaly score")
    axes.set_ylabel("Normal validation images")
    axes.set_title("Validation scores and threshold")
    return _chart(_svg(figure), "Validation score histogram")


def _dataset_checks(model) -> dict[str, Any] | None:
    """The intake checks of the training images: the copy kept with the model, else the dataset row if it survives."""
    recorded = (model.metrics or {}).get("dataset")
    if recorded:
        return {**recorded, "source": "recorded with the model"}
    run = model.run
    if not run.dataset_id or not run.dataset_id.isdigit():
        return None
    # imaging depends on modelhub, not the reverse at import time
    from imaging.models import ImageDataset
    from imaging.services import image_dataset_summary

    dataset = ImageDataset.objects.filter(pk=int(run.dataset_id), owner_id=model.user_id).first()
    if dataset is None:
        return None
    return {**image_dataset_summary(dataset), "source": "read from the stored dataset"}


def _image_confusion(metrics: dict[str, Any], class_names: list[str]) -> dict[str, Any] | None:
    matrix = metrics.get("confusion_matrix")
    labels = metrics.get("labels") or class_names
    if not matrix or not labels or len(matrix) != len(labels):
        return None
    return {
        "labels": labels,
        "rows": [
            {"label": label, "cells": cells, "total": sum(cells)} for label, cells in zip(labels, matrix, strict=True)
        ],
    }


def image_model_report_context(*, model) -> dict[str, Any]:
    """Everything templates/modelhub/image_report.html shows for an image classifier or an anomaly detector."""
    metrics = model.metrics or {}
    config = model.run.config or {}
    history = metrics.get("history") or []
    dataset = _dataset_checks(model)
    context: dict[str, Any] = {
        "model": model,
        "run": model.run,
        "metrics": metrics,
        "config": config,
        "days_left": model_days_left(model),
        "dataset": dataset,
        "pipeline_steps": metrics.get("pipeline") or [],
        "epochs_run": len(history),
        "image_size": metrics.get("image_size") or config.get("image_size"),
        "is_anomaly": model.run.kind == "anomaly",
    }
    if context["is_anomaly"]:
        enhanced = bool(metrics.get("enhanced", config.get("enhanced", False)))
        histogram = metrics.get("histogram") or {}
        percentile = metrics.get("threshold_percentile")
        context.update(
            {
                "enhanced": enhanced,
                "detectors": [
                    ANOMALY_DETECTOR_LABELS.get(name, name) for name in metrics.get("detectors") or ["reconstruction"]
                ],
                "threshold": metrics.get("threshold", model.metric_value),
                "threshold_percentile": percentile,
                "normal_flag_rate": (100.0 - float(percentile)) if percentile is not None else None,
                "validation_scores": len(histogram.get("scores") or []) or None,
                "histogram_chart": _score_histogram(histogram),
                "charts": _learning_curves(history, best_epoch=None, accuracy=False),
            }
        )
        return context
    from imaging.ml.architectures import ARCHITECTURES  # imports torch: only for image reports

    architecture = config.get("architecture") or model.model_name
    class_names = list(metrics.get("class_names") or config.get("classes") or [])
    counts = (dataset or {}).get("class_counts") or {}
    per_class = metrics.get("per_class") or []
    support = {row.get("class"): row.get("support") for row in per_class}
    context.update(
        {
            "architecture": architecture,
            "architecture_label": ARCHITECTURES.get(architecture, architecture),
            "class_names": class_names,
            "classes": [
                {"name": name, "count": counts.get(name), "val_count": support.get(name)} for name in class_names
            ],
            "per_class": per_class,
            "confusion": _image_confusion(metrics, class_names),
            "pretrained": bool(metrics.get("imagenet_weights")),
            "charts": _learning_curves(history, best_epoch=metrics.get("best_epoch"), accuracy=True),
        }
    )
    return context


# ----------------------------------------------------------------------------- the report as JSON (integrators)


def _json_ready(value: Any) -> Any:
    """Bundle figures as plain JSON: NumPy scalars unwrapped, NaN/inf as null, anything else as text."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def model_report_json(*, model, bundle: dict[str, Any] | None) -> dict[str, Any]:
    """What the model report page shows, as data: the same figures, no charts (the curves are given as points).

    Tabular models read their bundle; image classifiers and anomaly detectors (`bundle` None) their stored metrics.
    """
    run = model.run
    common = {
        "model_id": model.pk,
        "model_name": model.model_name,
        "kind": run.kind,
        "run": {"id": run.pk, "name": str(run), "status": run.status, "created_at": run.created_at.isoformat()},
        "created_at": model.created_at.isoformat(),
        "sha256": model.sha256,
        "is_selected": model.is_selected,
        "pinned": model.pinned,
        "days_left": model_days_left(model),
    }
    if bundle is None:
        return _json_ready({**common, "metrics": model.metrics or {}, "config": run.config or {}})
    validation = bundle.get("validation") or {}
    return _json_ready(
        {
            **common,
            "label": bundle.get("model_label") or model.model_name,
            "trained_at": bundle.get("trained_at"),
            "target": bundle.get("target"),
            "task": bundle.get("task"),
            "class_labels": bundle.get("class_labels") or [],
            "positive_label": bundle.get("positive_label"),
            "primary_metric": bundle.get("primary_metric"),
            "threshold": bundle.get("threshold"),
            "threshold_info": bundle.get("threshold_info") or {},
            "calibration": {
                "method": bundle.get("calibration"),
                "error": bundle.get("calibration_error"),
                "brier_by_method": bundle.get("calibration_brier") or {},
            },
            "metrics": bundle.get("metrics") or {},
            "intervals": bundle.get("intervals") or {},
            "confusion_matrix": bundle.get("confusion_matrix") or {},
            "curves": bundle.get("curves") or {},
            "validation": validation,
            "cv_score": bundle.get("cv_score"),
            "cv_std": bundle.get("cv_std"),
            "best_params": bundle.get("best_params") or {},
            "imbalance": bundle.get("imbalance"),
            "predictors": bundle["schema"].to_dict()["columns"],
            "dataset": bundle.get("dataset") or {},
            "cleaning_plan_id": (bundle.get("cleaning_plan") or {}).get("id"),
            "cleaning_report": bundle.get("cleaning_report") or {},
            "warnings": bundle.get("warnings") or [],
            "versions": bundle.get("versions") or {},
        }
    )
