"""JSON endpoints of tabular training: start, status, stop, and the documented root-level status/reset/stop."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import error_response
from deepmed.exceptions import ApplicationError
from modelhub import hub
from tabular import selectors, training

from .training_serializers import (
    TrainingRunCreatedSerializer,
    TrainingRunCreateSerializer,
    TrainingRunStatusSerializer,
)

TAGS = ["tabular training"]


def _status_body(run) -> dict:
    return TrainingRunStatusSerializer(run).data


class TrainingRunCreateView(APIView):
    @extend_schema(
        operation_id="training_runs_create",
        tags=TAGS,
        summary="Start a tabular training run",
        description=(
            "Queues a run on the `tabular` worker queue and answers 202 at once; poll "
            "`/api/v1/training-runs/{id}/`. Without `cleaning_plan` the automatic plan for the target is used. "
            "A refused request stores nothing; the body's `field` names the input to fix."
        ),
        request=TrainingRunCreateSerializer,
        responses={
            202: TrainingRunCreatedSerializer,
            400: error_response(
                "A choice was refused (`field` names it). A target flagged `identifier`, `personal_data` or "
                "`high_cardinality` is refused with that flag as the code unless `allow_flagged_target` is true."
            ),
            404: error_response("No dataset or cleaning plan of yours has this id."),
        },
    )
    def post(self, request):
        serializer = TrainingRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=data["dataset"])
        plan = None
        if data.get("cleaning_plan") is not None:
            plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=data["cleaning_plan"])
        selection_config = data.get("feature_selection")
        run = training.training_run_start(
            user=request.user,
            dataset=dataset,
            target=data["target"],
            cleaning_plan=plan,
            models=data.get("models"),
            level=data["level"],
            cv_folds=data["cv_folds"],
            imbalance=data["imbalance"],
            feature_selection=dict(selection_config) if selection_config else None,
            group_column=data.get("group_column") or None,
            primary_metric=data["primary_metric"],
            run_name=data.get("run_name"),
            target_sensitivity=data.get("target_sensitivity"),
            allow_flagged_target=data["allow_flagged_target"],
            use_saved_selection=data["use_saved_selection"],
        )
        return Response({"id": run.pk, "status": run.status}, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailView(APIView):
    @extend_schema(
        operation_id="training_runs_retrieve",
        tags=TAGS,
        summary="A training run of any kind (tabular, image, anomaly): status, progress and its models (best first)",
        description=(
            "The one polling URL of DESIGN.md §4 for `POST /api/train_model`, `/api/v1/anomaly/train` and tabular "
            "runs alike; `kind` says which. Image models have empty `intervals` and a null `threshold` unless "
            "their metrics carry them (anomaly detectors carry their threshold)."
        ),
        responses={200: TrainingRunStatusSerializer, 404: error_response("No run of yours has this id.")},
    )
    def get(self, request, pk: int):
        return Response(_status_body(hub.run_get_for_user(user=request.user, run_id=pk)))

    @extend_schema(
        operation_id="training_runs_destroy",
        tags=TAGS,
        summary="Delete one of your runs of any kind with its models and their files (audited)",
        responses={
            204: None,
            404: error_response("No run of yours has this id."),
            409: error_response("The run is still queued or running: stop it first."),
        },
    )
    def delete(self, request, pk: int):
        from modelhub.services import training_run_delete

        training_run_delete(user=request.user, run_id=pk, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrainingRunStopView(APIView):
    @extend_schema(
        operation_id="training_runs_stop",
        tags=TAGS,
        summary="Stop a run of any kind; finished models are kept",
        request=None,
        responses={
            202: TrainingRunStatusSerializer,
            404: error_response("No run of yours has this id."),
            409: error_response("The run has already finished."),
        },
    )
    def post(self, request, pk: int):
        # The stop itself is kind-agnostic (a flag the tabular and imaging executors both poll between steps).
        run = hub.run_get_for_user(user=request.user, run_id=pk)
        run = training.training_run_stop(run=run)
        return Response(_status_body(run), status=status.HTTP_202_ACCEPTED)


class TabularTrainingStatusView(APIView):
    @extend_schema(
        operation_id="tabular_training_status",
        tags=TAGS,
        summary="Your latest tabular training run (same shape as /api/v1/training-runs/{id}/)",
        responses={200: TrainingRunStatusSerializer, 404: error_response("You have no tabular run to show.")},
    )
    def get(self, request):
        run = training.training_run_latest_for_user(user=request.user)
        if run is None:
            raise ApplicationError("You have no tabular training run to show.", code="no_run", status_code=404)
        return Response(_status_body(run))


class TabularTrainingResetView(APIView):
    @extend_schema(
        operation_id="tabular_training_reset",
        tags=TAGS,
        summary="Clear your latest tabular run from the status view",
        description=(
            "A finished run is hidden from `/api/status/tabular_classification_training` (its models stay in "
            "the model hub). A queued or running run — e.g. one whose worker died — is marked `stopped` first, "
            "keeping the models it finished. 404 when there is nothing to reset."
        ),
        request=None,
        responses={200: TrainingRunStatusSerializer, 404: error_response("You have no tabular run to reset.")},
    )
    def post(self, request):
        run = training.training_run_reset(user=request.user)
        if run is None:
            raise ApplicationError("You have no tabular training run to reset.", code="no_run", status_code=404)
        return Response(_status_body(run))


class TabularTrainingStopView(APIView):
    @extend_schema(
        operation_id="tabular_training_stop",
        tags=TAGS,
        summary="Stop your running (or queued) tabular run",
        request=None,
        responses={
            202: TrainingRunStatusSerializer,
            404: error_response("You have no tabular run that is queued or running."),
        },
    )
    def post(self, request):
        run = training.training_run_active_for_user(user=request.user)
        if run is None:
            raise ApplicationError("You have no tabular run that is queued or running.", code="no_run", status_code=404)
        return Response(_status_body(training.training_run_stop(run=run)), status=status.HTTP_202_ACCEPTED)
