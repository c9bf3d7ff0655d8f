"""Validation metrics of a classifier, JSON-ready.

``classification_metrics(y_true, proba, class_names) -> dict`` with ``accuracy``, ``macro_f1``,
``per_class`` (precision, recall, F1, support per class), ``roc_auc_macro`` (one-vs-rest, macro;
``None`` with a reason in ``roc_auc_note`` when a class is missing from the validation labels),
``confusion_matrix`` (rows = true class, columns = predicted, in ``class_names`` order) and
``labels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score


def classification_metrics(y_true: Sequence[int], proba: np.ndarray, class_names: Sequence[str]) -> dict:
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    labels = list(range(len(class_names)))
    y_pred = proba.argmax(axis=1) if len(proba) else np.array([], dtype=int)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    auc, note = None, None
    present = set(y_true.tolist())
    if len(present) < len(labels):
        note = "ROC AUC needs every class in the validation set."
    else:
        try:
            if len(labels) == 2:
                auc = float(roc_auc_score(y_true, proba[:, 1]))
            else:
                normalised = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
                auc = float(roc_auc_score(y_true, normalised, multi_class="ovr", average="macro", labels=labels))
        except ValueError as exc:
            note = str(exc)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1)) if len(f1) else 0.0,
        "per_class": [
            {
                "class": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        ],
        "roc_auc_macro": auc,
        "roc_auc_note": note,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": list(class_names),
    }
