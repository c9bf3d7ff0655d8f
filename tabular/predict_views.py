"""Prediction pages: a form built from a model's schema for one patient, a CSV batch upload, feature importance."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from deepmed.exceptions import ApplicationError, NotFound
from modelhub.hub import model_bundle_for_user, model_feature_importance
from modelhub.models import TrainingModel, TrainingRun
from modelhub.selectors import training_model_list_for_user
from tabular.prediction import predict_csv, predict_rows


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


@login_required
@require_http_methods(["GET", "POST"])
def predict_page(request):
    models = _tabular_models(request.user)
    model = _chosen(request, models)
    context = {"models": models, "model": model, "schema": None, "result": None, "error": None, "values": {}}
    if model is None:
        return render(request, "tabular/predict.html", context)
    try:
        _, bundle = model_bundle_for_user(user=request.user, model_id=model.pk)
    except ApplicationError as error:
        context["error"] = error.message
        return render(request, "tabular/predict.html", context, status=error.status_code)
    context["schema"] = bundle["schema"]
    context["bundle"] = bundle
    if request.method == "POST":
        try:
            if request.FILES.get("file") is not None:
                content, _ = predict_csv(user=request.user, model_id=model.pk, uploaded=request.FILES["file"])
                response = HttpResponse(content, content_type="text/csv")
                response["Content-Disposition"] = 'attachment; filename="predictions.csv"'
                return response
            # Empty fields are missing values: the model's imputation fills them, as in training.
            values = {spec.name: request.POST.get(f"col_{spec.name}", "") for spec in bundle["schema"].columns}
            context["values"] = values
            row = {name: (value if value != "" else None) for name, value in values.items()}
            context["result"] = predict_rows(user=request.user, model_id=model.pk, rows=[row])
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
