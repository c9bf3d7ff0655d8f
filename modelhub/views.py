"""Model hub pages: /my_models, selection, pin/unpin, download, the model report. Thin: modelhub.hub does the work."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from deepmed.exceptions import ApplicationError, NotFound

from . import hub
from .models import TrainingRun
from .report import METRIC_LABELS, image_model_report_context, model_report_context
from .selectors import training_model_list_for_user


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
def my_models(request):
    sort = request.GET.get("sort", "-created_at")
    models = hub.sorted_models(training_model_list_for_user(user=request.user), sort=sort)
    rows = [
        {"model": model, "days_left": hub.model_days_left(model), "kind": hub.model_kind(model)} for model in models
    ]
    context = {
        "rows": rows,
        "sort": sort,
        "sort_options": [("-created_at", "Newest first"), ("created_at", "Oldest first")]
        + [(key, label) for key, label in METRIC_LABELS.items()],
        "history": hub.selection_history_for_user(user=request.user),
    }
    return render(request, "modelhub/my_models.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def select_model(request, model_name: str, metric: str):
    try:
        model = hub.model_select(user=request.user, model_name=model_name, metric=metric, request=request)
    except ApplicationError as error:
        if _wants_json(request):
            return JsonResponse({"detail": error.message, "code": error.code}, status=error.status_code)
        if isinstance(error, NotFound):
            raise Http404(error.message) from None
        return render(request, "400.html", {"message": error.message}, status=error.status_code)
    if _wants_json(request):
        return JsonResponse({"id": model.pk, "model_name": model.model_name, "metric": metric, "is_selected": True})
    messages.success(request, f"Selected {model.model_name} (model {model.pk}) by {metric}.")
    return redirect("modelhub-my-models")


@login_required
@require_POST
def pin_model(request, model_id: int):
    try:
        model = hub.model_pin(user=request.user, model_id=model_id, pinned=request.POST.get("pinned", "1") == "1")
    except NotFound as error:
        raise Http404(error.message) from None
    messages.success(request, f"Model {model.pk} is {'pinned' if model.pinned else 'no longer pinned'}.")
    return redirect("modelhub-my-models")


@login_required
def download_model(request, model_id: int):
    try:
        model, content = hub.model_download_zip(user=request.user, model_id=model_id, request=request)
    except NotFound as error:
        raise Http404(error.message) from None
    except ApplicationError as error:
        return render(request, "modelhub/refused.html", {"message": error.message}, status=error.status_code)
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="deepmed-model-{model.pk}-{model.model_name}.zip"'
    return response


@login_required
def model_report(request, model_id: int):
    try:
        model = hub.model_get_for_user(user=request.user, model_id=model_id)
    except NotFound as error:
        raise Http404(error.message) from None
    if hub.model_kind(model) in (TrainingRun.Kind.IMAGE, TrainingRun.Kind.ANOMALY):
        return render(request, "modelhub/image_report.html", image_model_report_context(model=model))
    try:
        model, bundle = hub.model_bundle_for_user(user=request.user, model_id=model_id)
    except NotFound as error:
        raise Http404(error.message) from None
    except ApplicationError as error:
        return render(request, "modelhub/refused.html", {"message": error.message}, status=error.status_code)
    return render(request, "modelhub/report.html", model_report_context(model=model, bundle=bundle))
