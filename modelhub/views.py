"""Model hub pages: /my_models, selection, pin/unpin, download, delete, the model report. Thin: hub does the work.

`/select_model/<name>/<metric>` and `/download_model/<id>` are pages a browser opens with its session and routes an
integrator calls with `Authorization: Bearer` (DESIGN.md §4), so they are DRF views: DRF authenticates either way,
and a session's unsafe request must carry the CSRF token (SessionAuthentication checks it), so a link or a form on
another site can never change a selection.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import error_response
from deepmed.exceptions import ApplicationError, NotFound
from deepmed.middleware import wants_json
from deepmed.pages import page_not_found

from . import hub, services
from .api.serializers import SelectedSerializer, SelectionChoiceSerializer
from .models import TrainingRun
from .report import METRIC_LABELS, image_model_report_context, model_report_context
from .selectors import training_model_list_for_user


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


class _PageOrTokenView(APIView):
    """A page for a signed-in browser that is also a JSON route for a Bearer token (see the module docstring)."""

    permission_classes = [AllowAny]  # checked in `_refuse_anonymous`: browsers go to the login page, not a 401

    @staticmethod
    def _is_api_call(request) -> bool:
        return request.auth is not None or wants_json(request._request)

    def _refuse_anonymous(self, request):
        if request.user.is_authenticated:
            return None
        if self._is_api_call(request):
            raise NotAuthenticated()
        return redirect_to_login(request.get_full_path())

    def _page_error(self, request, error: ApplicationError):
        """An ApplicationError as JSON for API calls, else as a page a clinician can read."""
        if self._is_api_call(request):
            raise error
        if isinstance(error, NotFound):
            return page_not_found(request._request, error)
        return render(request._request, "modelhub/refused.html", {"message": error.message}, status=error.status_code)


_RUN_PARAMETER = OpenApiParameter(
    "run",
    int,
    description="Choose within this run of yours (default: your latest finished run that has such a model).",
)


class SelectModelView(_PageOrTokenView):
    """`/select_model/<model_name>/<metric>`: GET shows what would be selected, POST selects it."""

    @extend_schema(
        operation_id="select_model_preview",
        tags=["models"],
        summary="Which model /select_model would select (changes nothing)",
        description=(
            "The best `model_name` by `metric` (lowest for `brier`) within one run: `?run=<id>`, or your latest "
            "finished run that has such a model. Models of different runs are never compared. A browser gets a "
            "confirmation page; select with POST."
        ),
        parameters=[_RUN_PARAMETER],
        responses={
            200: SelectionChoiceSerializer,
            400: error_response("Unknown metric."),
            401: error_response("Not signed in, or the access token is not valid."),
            404: error_response("No such model in that run, or no run of yours has this id."),
        },
    )
    def get(self, request, model_name: str, metric: str):
        refused = self._refuse_anonymous(request)
        if refused is not None:
            return refused
        run_id = request.query_params.get("run")
        try:
            choice = hub.model_select_choice(user=request.user, model_name=model_name, metric=metric, run_id=run_id)
        except ApplicationError as error:
            return self._page_error(request, error)
        if self._is_api_call(request):
            return Response(SelectionChoiceSerializer(choice).data)
        context = {
            "choice": choice,
            "metric_label": METRIC_LABELS.get(metric, metric),
            "run_was_given": run_id not in (None, ""),
        }
        return render(request._request, "modelhub/select_confirm.html", context)

    @extend_schema(
        operation_id="select_model",
        tags=["models"],
        summary="Select the best model of a name by a metric, within one run",
        description=(
            "Same choice as the GET. The previous selection of the same kind (tabular or image) is released; "
            "the selection is audited with the run it was made in. A browser session must send its CSRF token."
        ),
        parameters=[_RUN_PARAMETER],
        request=None,
        responses={
            200: SelectedSerializer,
            400: error_response("Unknown metric."),
            401: error_response("Not signed in, or the access token is not valid."),
            403: error_response("A browser session without its CSRF token."),
            404: error_response("No such model in that run, or no run of yours has this id."),
        },
    )
    def post(self, request, model_name: str, metric: str):
        refused = self._refuse_anonymous(request)
        if refused is not None:
            return refused
        body = request.data if hasattr(request.data, "get") else {}
        run_id = request.query_params.get("run") or body.get("run")
        try:
            model = hub.model_select(
                user=request.user, model_name=model_name, metric=metric, run_id=run_id, request=request._request
            )
        except ApplicationError as error:
            return self._page_error(request, error)
        if self._is_api_call(request):
            # The original system's answer, kept as it was: integrators compare it.
            return Response({"id": model.pk, "model_name": model.model_name, "metric": metric, "is_selected": True})
        messages.success(request._request, f"Selected {model.model_name} (model {model.pk}) of run {model.run_id}.")
        return redirect("modelhub-my-models")


class DownloadModelView(_PageOrTokenView):
    """`/download_model/<id>`: the model's ZIP, for its owner's session or Bearer token."""

    @extend_schema(
        operation_id="download_model",
        tags=["models"],
        summary="Download one of your models (ZIP: model, input schema, report, README, standalone runtime)",
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The model's ZIP."),
            401: error_response("Not signed in, or the access token is not valid."),
            404: error_response("No such model among yours."),
            409: error_response("The model's file failed its checksum."),
            410: error_response("The model's file is gone (removed by retention)."),
        },
    )
    def get(self, request, model_id: int):
        refused = self._refuse_anonymous(request)
        if refused is not None:
            return refused
        try:
            model, content = hub.model_download_zip(user=request.user, model_id=model_id, request=request._request)
        except ApplicationError as error:
            return self._page_error(request, error)
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="deepmed-model-{model.pk}-{model.model_name}.zip"'
        return response


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return default


@login_required
@require_POST
def select_model_by_id(request, model_id: int):
    """The leaderboard's and /my_models' button: select exactly this model (the row the user clicked)."""
    try:
        model = hub.model_select_by_id(user=request.user, model_id=model_id, request=request)
    except NotFound as error:
        raise Http404(error.message) from None
    messages.success(request, f"Selected {model.model_name} (model {model.pk}) of run {model.run_id}.")
    return redirect(_safe_next(request, reverse("modelhub-my-models")))


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
@require_http_methods(["GET", "POST"])
def delete_model(request, model_id: int):
    """GET asks for confirmation; POST deletes the model and its file."""
    try:
        model = hub.model_get_for_user(user=request.user, model_id=model_id)
    except NotFound as error:
        raise Http404(error.message) from None
    if request.method == "POST":
        try:
            services.training_model_delete(user=request.user, model_id=model.pk, request=request)
        except ApplicationError as error:
            return render(request, "modelhub/refused.html", {"message": error.message}, status=error.status_code)
        messages.success(request, f"Model {model.model_name} (#{model.pk}) and its file were deleted.")
        return redirect("modelhub-my-models")
    return render(request, "modelhub/confirm_delete.html", {"model": model, "run": model.run})


@login_required
@require_http_methods(["GET", "POST"])
def delete_run(request, run_id: int):
    """GET asks for confirmation (listing the models that go with the run); POST deletes it."""
    try:
        run = hub.run_get_for_user(user=request.user, run_id=run_id)
    except NotFound as error:
        raise Http404(error.message) from None
    if request.method == "POST":
        try:
            services.training_run_delete(user=request.user, run_id=run.pk, request=request)
        except ApplicationError as error:
            return render(request, "modelhub/refused.html", {"message": error.message}, status=error.status_code)
        messages.success(request, f"Run “{run}” (#{run.pk}), its models and their files were deleted.")
        return redirect("modelhub-my-models")
    return render(
        request, "modelhub/confirm_delete.html", {"model": None, "run": run, "models": list(run.models.all())}
    )


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
