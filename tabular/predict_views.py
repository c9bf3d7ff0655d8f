"""Prediction pages: a form built from a model's schema for one patient, a CSV batch upload, feature importance.

The one-patient form says, per column, what the model was trained on: yes/no columns are a Yes/No select,
categories a select of the training categories, numbers show their training range, and every field says what a
blank becomes (the fitted pipeline's imputation) before anything is sent. What was typed stays in the form under
the result.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from deepmed.exceptions import ApplicationError, NotFound
from modelhub.hub import model_bundle_for_user, model_feature_importance
from modelhub.models import TrainingModel, TrainingRun
from modelhub.selectors import training_model_list_for_user
from tabular.bundles import bundle_input_columns
from tabular.prediction import predict_csv, predict_rows, prediction_in_words, refuse_oversized_predict_request

_IMPUTE_WORDS = {
    "median": "median of the training rows",
    "mean": "mean of the training rows",
    "most_frequent": "most frequent value in the training rows",
    "constant": "a fixed value",
}
_ESTIMATED = {
    "knn": "If left blank: estimated from the most similar patients in the training rows.",
    "iterative": "If left blank: estimated from this patient's other values.",
}


def _tabular_models(user):
    return training_model_list_for_user(user=user).filter(run__kind=TrainingRun.Kind.TABULAR)


def _chosen(request, models) -> TrainingModel | None:
    raw = request.POST.get("model_id") or request.GET.get("model_id")
    if raw in (None, ""):
        return models.first()
    model = models.filter(pk=raw).first() if str(raw).isdigit() else None
    if model is None:
        raise Http404("No such model among yours.")
    return model


def _number_text(value) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


def _shown_value(value, options: list[tuple[str, str]]) -> str:
    """A value as the form would show it: a select's option text, a number without a trailing .0."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, int | float):
        text = _number_text(value)
    else:
        text = str(value)
    return dict(options).get(text, text)


def _blank_hint(impute: dict | None, options: list[tuple[str, str]]) -> str:
    if not impute:
        return "If left blank: filled in by the model's cleaning step, as in training."
    method = impute.get("method")
    if method in _ESTIMATED:
        return _ESTIMATED[method]
    if impute.get("value") is None:
        return f"If left blank: filled with the {_IMPUTE_WORDS.get(method, 'value learned in training')}."
    return f"If left blank: {_shown_value(impute['value'], options)} ({_IMPUTE_WORDS.get(method, method)})."


def _form_fields(*, model: TrainingModel, bundle: dict, typed: dict[str, str]) -> list[dict]:
    """One entry per input column, in training order: the widget, its options, the typed value and the hints."""
    inputs = {column["name"]: column for column in bundle_input_columns(bundle, ranges=model.input_ranges)}
    plan = (bundle.get("cleaning_plan") or {}).get("plan") or {}
    plan_columns = {column.get("name"): column for column in plan.get("columns", [])}
    fields = []
    for position, spec in enumerate(bundle["schema"].columns, start=1):
        info, planned = inputs.get(spec.name, {}), plan_columns.get(spec.name, {})
        options: list[tuple[str, str]] = []
        widget = {"number": "number", "date": "date"}.get(spec.kind, "text")
        if spec.kind == "boolean":
            widget, options = "select", [("true", "Yes"), ("false", "No")]
        elif spec.kind == "number" and planned.get("kind") == "boolean":
            # A 0/1 column the profiler read as yes/no: the model still receives the numbers.
            widget, options = "select", [("1", "Yes"), ("0", "No")]
        elif spec.categories is not None:
            widget, options = "select", [(str(category), str(category)) for category in spec.categories]
        hints = []
        low_high = info.get("range")
        if widget == "number" and low_high and len(low_high) == 2:
            hints.append(f"Training range: {_number_text(low_high[0])} to {_number_text(low_high[1])}.")
        if planned.get("zeros_as_missing"):
            hints.append("0 counts as not measured.")
        hints.append(_blank_hint(info.get("impute"), options))
        fields.append(
            {
                "name": spec.name,
                "input_name": f"col_{spec.name}",
                "id": f"col_{position}",
                "widget": widget,
                "options": options,
                "value": typed.get(spec.name, ""),
                "required": spec.required,
                "hint": " ".join(hints),
            }
        )
    return fields


@login_required
@require_http_methods(["GET", "POST"])
def predict_page(request):
    models = _tabular_models(request.user)
    if request.method == "POST":
        try:
            # Judge the declared size before request.POST or request.FILES spool the whole body.
            refuse_oversized_predict_request(request)
        except ApplicationError as error:
            context = {"models": models, "model": None, "schema": None, "result": None, "error": error.message}
            return render(request, "tabular/predict.html", {**context, "fields": []}, status=error.status_code)
    model = _chosen(request, models)
    context = {"models": models, "model": model, "schema": None, "result": None, "error": None, "fields": []}
    if model is None:
        return render(request, "tabular/predict.html", context)
    try:
        _, bundle = model_bundle_for_user(user=request.user, model_id=model.pk)
    except ApplicationError as error:
        context["error"] = error.message
        return render(request, "tabular/predict.html", context, status=error.status_code)
    context["schema"] = bundle["schema"]
    context["bundle"] = bundle
    context["fields"] = _form_fields(model=model, bundle=bundle, typed={})
    if request.method == "POST":
        try:
            if request.FILES.get("file") is not None:
                content, _ = predict_csv(user=request.user, model_id=model.pk, uploaded=request.FILES["file"])
                response = HttpResponse(content, content_type="text/csv")
                response["Content-Disposition"] = 'attachment; filename="predictions.csv"'
                return response
            # Empty fields are missing values: the model's imputation fills them, as in training.
            values = {spec.name: request.POST.get(f"col_{spec.name}", "") for spec in bundle["schema"].columns}
            # The form keeps what was typed, under the result or the error.
            context["fields"] = _form_fields(model=model, bundle=bundle, typed=values)
            row = {name: (value if value != "" else None) for name, value in values.items()}
            result = predict_rows(user=request.user, model_id=model.pk, rows=[row])
            for prediction in result["predictions"]:
                prediction["words"] = prediction_in_words(prediction, answer=result, target=bundle["target"])
            context["result"] = result
        except ApplicationError as error:
            context["error"] = error.message
            return render(request, "tabular/predict.html", context, status=error.status_code)
    return render(request, "tabular/predict.html", context)


@login_required
def feature_importance_page(request):
    models = _tabular_models(request.user)
    model = _chosen(request, models)
    context = {"models": models, "model": model, "importance": None, "error": None}
    if model is not None:
        try:
            context["importance"] = model_feature_importance(user=request.user, model_id=model.pk)
        except NotFound as error:
            raise Http404(error.message) from None
        except ApplicationError as error:
            context["error"] = error.message
            return render(request, "tabular/feature_importance.html", context, status=error.status_code)
    return render(request, "tabular/feature_importance.html", context)
