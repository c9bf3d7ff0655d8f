"""Serving a trained tabular model: validate rows against its schema, predict, explain.

`predict_rows(user=, model_id=, rows=)` returns labels, confidences, class probabilities and per-row
explanations. The label comes from `pipeline.predict`, which applies the bundle's decision threshold (binary
models) — the same threshold the leaderboard and the report show. `predict_csv` appends those columns to an
uploaded CSV (at most `MAX_PREDICT_CSV_MB`), written through `deepmed.csv_safety` so that no cell or column name
of it can start a spreadsheet formula. Another user's model is a 404 before any file is read.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings

from deepmed.csv_safety import csv_bytes
from deepmed.exceptions import ApplicationError
from deepmed.uploads import refuse_declared_over
from modelhub.hub import bundle_background, model_bundle_for_user
from tabular.ml.explain import explain_rows
from tabular.ml.schema import SchemaError, validate_rows

# A row-by-row explanation costs one predict_proba of (columns + 1) rows per row; beyond this many rows a batch
# answer leaves explanations out rather than keep the clinician waiting.
MAX_EXPLAINED_ROWS = 1000
TOP_FEATURES = 5


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _as_frame(rows) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ApplicationError('Send "rows" as a list of objects, one per patient: [{"column": value, ...}].')
    return pd.DataFrame.from_records(rows)


def predict_rows(*, user, model_id, rows, explain: bool = True) -> dict[str, Any]:
    """Predict `rows` (list of dicts or a DataFrame) with the user's model; SchemaError becomes a 400."""
    model, bundle = model_bundle_for_user(user=user, model_id=model_id)
    frame = _as_frame(rows)
    try:
        clean, ignored = validate_rows(bundle["schema"], frame)
    except SchemaError as error:
        raise ApplicationError(error.message, code="schema_mismatch") from None
    pipeline = bundle["pipeline"]
    probabilities = pipeline.predict_proba(clean)
    labels = pipeline.predict(clean)
    classes = [_plain(label) for label in pipeline.classes_]
    explanations: list[list[dict[str, Any]]] = [[] for _ in range(len(clean))]
    note = ""
    if explain and len(clean) <= MAX_EXPLAINED_ROWS:
        background = bundle_background(bundle=bundle, user=user)
        if background is None:
            note = "Explanations are left out: the dataset this model was trained on is no longer stored."
        else:
            explanations = explain_rows(pipeline, clean, background=background, top_k=TOP_FEATURES)
    elif explain:
        note = f"Explanations are given for batches of up to {MAX_EXPLAINED_ROWS} rows."
    predictions = []
    for index, label in enumerate(labels):
        row_probabilities = {str(cls): float(p) for cls, p in zip(classes, probabilities[index], strict=True)}
        label = _plain(label)
        predictions.append(
            {
                "label": label,
                "confidence": float(row_probabilities[str(label)]),
                "probabilities": row_probabilities,
                "explanation": [
                    {"feature": item["feature"], "contribution": float(item["contribution"])}
                    for item in explanations[index]
                ],
            }
        )
    answer = {
        "model_id": model.pk,
        "model_name": model.model_name,
        "threshold": bundle.get("threshold"),
        "positive_label": bundle.get("positive_label"),
        "predictions": predictions,
        "ignored_columns": ignored,
    }
    if note:
        answer["explanation_note"] = note
    return answer


def _csv_limit() -> int:
    return settings.MAX_PREDICT_CSV_MB * 1024 * 1024


def _csv_too_large(size: int | None = None) -> ApplicationError:
    shown = f" ({size / 1024 / 1024:.1f} MB)" if size else ""
    return ApplicationError(
        f"The file is too large{shown}: a CSV to predict on may be {settings.MAX_PREDICT_CSV_MB} MB. "
        "Split it into smaller batches.",
        code="file_too_large",
    )


def refuse_oversized_predict_request(request) -> None:
    """Refuse an oversized CSV to predict on by its declared length, before the body is parsed."""
    refuse_declared_over(request, limit_bytes=_csv_limit(), error=_csv_too_large)


def read_prediction_csv(uploaded) -> pd.DataFrame:
    """Read an uploaded CSV of patients; unreadable or oversized files are a 400 a clinician can act on."""
    limit = _csv_limit()
    declared = getattr(uploaded, "size", None)
    if declared is not None and declared > limit:
        raise _csv_too_large(declared)
    # One read, capped: a stream without a trustworthy size cannot make us hold more than the limit.
    raw = uploaded.read(limit + 1)
    if len(raw) > limit:
        raise _csv_too_large()
    if not raw.strip():
        raise ApplicationError(
            "The file is empty. Upload a CSV with a header row and one row per patient.", code="empty_file"
        )
    try:
        try:
            return pd.read_csv(io.BytesIO(raw), sep=None, engine="python")
        except csv.Error:
            # The delimiter sniffer gives up on a file with no delimiter in it, e.g. one column: read it as commas.
            return pd.read_csv(io.BytesIO(raw))
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as error:
        raise ApplicationError(
            f"The file could not be read as a CSV table ({error}). Save it as CSV with a header row.",
            code="unreadable_file",
        ) from None


def predict_csv(*, user, model_id, uploaded) -> tuple[bytes, dict[str, Any]]:
    """The uploaded CSV with prediction columns appended (label, confidence, one probability per class).

    Uploaded cells and headers and the class labels are the uploader's text: `csv_bytes` quotes any that a
    spreadsheet would run as a formula.
    """
    frame = read_prediction_csv(uploaded)
    answer = predict_rows(user=user, model_id=model_id, rows=frame, explain=False)
    out = frame.copy()
    predictions = answer["predictions"]
    out["predicted_label"] = [p["label"] for p in predictions]
    out["confidence"] = np.round([p["confidence"] for p in predictions], 6)
    for label in predictions[0]["probabilities"] if predictions else []:
        out[f"probability_{label}"] = np.round([p["probabilities"][label] for p in predictions], 6)
    return csv_bytes(out), answer


# --- the result in words ----------------------------------------------------------------------------------------------


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def prediction_in_words(prediction: dict[str, Any], *, answer: dict[str, Any], target: str) -> dict[str, str]:
    """The sentence a clinician reads for one prediction of `predict_rows`' `answer`.

    Binary models: "Higher risk: 46.6% (this model flags patients from 14.9%)" — the probability of the positive
    outcome, and the threshold the model flags from, both as percentages; "Lower risk" below it. Others: the most
    likely outcome and its probability. `detail` says which outcome the percentage is about.
    """
    threshold, positive = answer.get("threshold"), answer.get("positive_label")
    probabilities = prediction["probabilities"]
    if threshold is not None and positive is not None and str(positive) in probabilities:
        risk = probabilities[str(positive)]
        flagged = str(prediction["label"]) == str(positive)
        level = "Higher risk" if flagged else "Lower risk"
        return {
            "headline": f"{level}: {_percent(risk)} (this model flags patients from {_percent(threshold)})",
            "detail": f"Estimated probability that {target} is {positive}: {_percent(risk)}. "
            + (
                "It reaches the model's threshold, so the patient is flagged."
                if flagged
                else "It is below the model's threshold, so the patient is not flagged."
            ),
        }
    return {
        "headline": f"Most likely {target}: {prediction['label']} ({_percent(prediction['confidence'])})",
        "detail": "The outcome with the highest estimated probability; every outcome's probability is listed below.",
    }
