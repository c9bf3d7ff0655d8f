"""JSON endpoints for datasets, profiles, cleaning plans and feature selection. Thin: validate, call, shape."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from deepmed.api_schema import error_response
from tabular import selectors, services

from .serializers import (
    ApplyResultSerializer,
    CleaningPlanCreateSerializer,
    CleaningPlanSerializer,
    DatasetSerializer,
    DatasetUploadSerializer,
    ExtractFeaturesSerializer,
    FeatureSelectionOverrideSerializer,
    FeatureSelectionRequestSerializer,
    FeatureSelectionSerializer,
    PlanUpdateSerializer,
    ProfileSerializer,
)

TAGS = ["tabular"]


class DatasetListCreateView(GenericAPIView):
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = DatasetSerializer

    def get_queryset(self):
        return selectors.dataset_list_for_user(user=self.request.user)

    # many=True: a list, so the schema wraps it in the paginator's envelope (count, next, previous, results).
    @extend_schema(
        operation_id="datasets_list",
        tags=TAGS,
        summary="Your datasets, newest first",
        responses={200: DatasetSerializer(many=True)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(DatasetSerializer(page, many=True).data)

    @extend_schema(
        operation_id="datasets_create",
        tags=TAGS,
        summary="Upload a table (CSV, Excel or JSON)",
        description=(
            "The type is checked from the content. Delimiter and encoding are detected; `NA`, `N/A`, `-`, `?`, "
            "`null` and empty cells become missing. A file that cannot be read is refused with 400 and a message "
            "saying what is wrong (code names the problem, e.g. `empty_file`, `duplicate_columns`, "
            "`file_too_large`); nothing is stored then."
        ),
        request={"multipart/form-data": DatasetUploadSerializer},
        responses={201: DatasetSerializer, 400: error_response("The file was refused; nothing was stored.")},
    )
    def post(self, request):
        services.refuse_oversized_request(request)
        serializer = DatasetUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dataset = services.dataset_create(
            user=request.user,
            uploaded_file=serializer.validated_data["file"],
            name=serializer.validated_data.get("name"),
            sheet=serializer.validated_data.get("sheet"),
        )
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(APIView):
    @extend_schema(
        operation_id="datasets_retrieve",
        tags=TAGS,
        summary="One of your datasets",
        responses={200: DatasetSerializer, 404: error_response("No dataset of yours has this id.")},
    )
    def get(self, request, pk: int):
        dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
        return Response(DatasetSerializer(dataset).data)

    @extend_schema(
        operation_id="datasets_destroy",
        tags=TAGS,
        summary="Delete a dataset, its files, profiles and cleaning plans",
        responses={204: None, 404: error_response("No dataset of yours has this id.")},
    )
    def delete(self, request, pk: int):
        dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
        services.dataset_delete(dataset=dataset, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetProfileView(APIView):
    @extend_schema(
        operation_id="datasets_profile",
        tags=TAGS,
        summary="Profile of a dataset (metadata only), optionally for a target column",
        parameters=[OpenApiParameter("target", str, description="The outcome column: adds class balance, leakage.")],
        responses={
            200: ProfileSerializer,
            400: error_response("The target is not a column of the dataset (`unknown_column`)."),
            404: error_response("No dataset of yours has this id."),
        },
    )
    def get(self, request, pk: int):
        dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
        profile = services.dataset_profile_get(dataset=dataset, target=request.query_params.get("target"))
        choice = services.dataset_outcome_choice(dataset=dataset)
        return Response({**profile, "suggested_outcome": choice["suggestion"], "flagged_targets": choice["flagged"]})


class DatasetCleaningPlanCreateView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        operation_id="datasets_cleaning_plan_create",
        tags=TAGS,
        summary="Make the rule-based cleaning plan for a target",
        description="The planner sees the profile only, never the rows. The plan is stored as a draft to review.",
        request=CleaningPlanCreateSerializer,
        responses={
            201: CleaningPlanSerializer,
            400: error_response(
                "Unknown target column or planner option; a target flagged `identifier`, `personal_data` or "
                "`high_cardinality` (the code names the flag) unless `allow_flagged_target` is true."
            ),
            404: error_response("No dataset of yours has this id."),
        },
    )
    def post(self, request, pk: int):
        dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
        serializer = CleaningPlanCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = dict(serializer.validated_data.get("options") or {})
        # Options may also come flat, next to `target` (DESIGN.md §4: `{"target", ...options}`).
        not_options = ("target", "options", "allow_flagged_target")
        options.update({key: value for key, value in request.data.items() if key not in not_options})
        plan = services.cleaning_plan_create(
            user=request.user,
            dataset=dataset,
            target=serializer.validated_data["target"],
            options=options,
            allow_flagged_target=serializer.validated_data["allow_flagged_target"],
        )
        return Response(CleaningPlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class CleaningPlanDetailView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="cleaning_plans_retrieve",
        tags=TAGS,
        summary="A cleaning plan",
        responses={200: CleaningPlanSerializer, 404: error_response("No plan of yours has this id.")},
    )
    def get(self, request, pk: int):
        plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=pk)
        return Response(CleaningPlanSerializer(plan).data)

    @extend_schema(
        operation_id="cleaning_plans_update",
        tags=TAGS,
        summary="Edit a cleaning plan",
        description="Columns are matched by name; fields not sent keep their value. The whole plan is validated.",
        request=PlanUpdateSerializer,
        responses={
            200: CleaningPlanSerializer,
            400: error_response("An unknown column or method, named in the message; the plan is unchanged."),
            404: error_response("No plan of yours has this id."),
        },
    )
    def put(self, request, pk: int):
        plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=pk)
        serializer = PlanUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = {**request.data, "columns": serializer.validated_data["columns"]}
        plan = services.cleaning_plan_update(plan=plan, changes=changes)
        return Response(CleaningPlanSerializer(plan).data)


class CleaningPlanApplyView(APIView):
    @extend_schema(
        operation_id="cleaning_plans_apply",
        tags=TAGS,
        summary="Apply a cleaning plan and get its report",
        description="Row-level steps run once and are counted; the report is kept in preprocessing_data.",
        request=None,
        responses={
            200: ApplyResultSerializer,
            400: error_response("The plan is invalid."),
            404: error_response("No such plan."),
        },
    )
    def post(self, request, pk: int):
        plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=pk)
        plan = services.cleaning_plan_apply(plan=plan)
        return Response({"report": plan.report, "n_rows_before": plan.n_rows_before, "n_rows_after": plan.n_rows_after})


class FeatureSelectionView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="cleaning_plans_feature_selection_retrieve",
        tags=TAGS,
        summary="The stored feature ranking and chosen columns",
        responses={200: FeatureSelectionSerializer, 404: error_response("No applied plan of yours has this id.")},
    )
    def get(self, request, pk: int):
        plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=pk)
        preprocessing = services.preprocessing_for_plan(plan=plan)
        if preprocessing is None:
            raise services.ApplicationError(
                "Apply the cleaning plan before selecting features.", code="plan_not_applied", status_code=404
            )
        return Response(FeatureSelectionSerializer(preprocessing).data)

    @extend_schema(
        operation_id="cleaning_plans_feature_selection_create",
        tags=TAGS,
        summary="Rank the kept columns and choose the top k (or those above a threshold)",
        request=FeatureSelectionRequestSerializer,
        responses={
            200: FeatureSelectionSerializer,
            400: error_response("Unknown method, or the plan is not applied yet."),
            404: error_response("No plan of yours has this id."),
        },
    )
    def post(self, request, pk: int):
        plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=pk)
        serializer = FeatureSelectionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preprocessing = services.feature_selection_run(plan=plan, **serializer.validated_data)
        return Response(FeatureSelectionSerializer(preprocessing).data)

    @extend_schema(
        operation_id="cleaning_plans_feature_selection_override",
        tags=TAGS,
        summary="Replace the chosen columns with your own choice",
        request=FeatureSelectionOverrideSerializer,
        responses={
            200: FeatureSelectionSerializer,
            400: error_response("A column the plan does not keep, named."),
            404: error_response("No plan of yours has this id."),
        },
    )
    def put(self, request, pk: int):
        plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=pk)
        serializer = FeatureSelectionOverrideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preprocessing = services.feature_selection_override(
            plan=plan, selected=serializer.validated_data["selected_columns"]
        )
        return Response(FeatureSelectionSerializer(preprocessing).data)


class ExtractFeaturesView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="extract_features",
        tags=TAGS,
        summary="Derive features on a dataset, producing a new version that records its parent",
        description=(
            'Example spec: `{"datetime_parts": ["admitted"], "ratios": [["weight", "height"]], '
            '"products": [["age", "bmi"]], "polynomial": {"columns": ["age"], "degree": 2}, "text_stats": ["notes"]}`.'
        ),
        request=ExtractFeaturesSerializer,
        responses={
            201: DatasetSerializer,
            400: error_response("The spec names an unknown column or feature kind."),
            404: error_response("No dataset of yours has this id."),
        },
    )
    def post(self, request):
        serializer = ExtractFeaturesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        parent = selectors.dataset_get_for_user(user=request.user, dataset_id=serializer.validated_data["dataset"])
        dataset = services.dataset_extract_features(
            user=request.user,
            parent=parent,
            spec=serializer.validated_data["spec"],
            name=serializer.validated_data.get("name"),
        )
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)
