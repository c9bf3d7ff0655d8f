"""Request and response shapes of the tabular API (they also drive the OpenAPI schema)."""

from rest_framework import serializers

from deepmed.api_schema import ErrorSerializer  # noqa: F401  (re-exported for the views)
from tabular.ml import selection
from tabular.models import CleaningPlan, Dataset


class DatasetColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField()
    n_missing = serializers.IntegerField()


class DatasetSerializer(serializers.ModelSerializer):
    columns = DatasetColumnSerializer(many=True, read_only=True)
    warnings = serializers.ListField(source="read_warnings", child=serializers.CharField(), read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "n_rows",
            "n_columns",
            "columns",
            "sha256",
            "original_filename",
            "format",
            "encoding",
            "delimiter",
            "sheet",
            "sheet_names",
            "warnings",
            "size_bytes",
            "parent",
            "derivation",
            "created_at",
        ]
        read_only_fields = fields


class DatasetUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,  # the reader names the problem ("the file is empty") in the words of every other refusal
        help_text="CSV (any common delimiter; UTF-8, UTF-8 with BOM or Latin-1), Excel .xlsx, or JSON.",
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    sheet = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="Excel only: the sheet to read (default: first)."
    )


class ProfileColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField(help_text="numeric, categorical, boolean, datetime, text or identifier")
    n_missing = serializers.IntegerField()
    missing_share = serializers.FloatField()
    n_unique = serializers.IntegerField()
    flags = serializers.ListField(child=serializers.CharField())


class ProfileSerializer(serializers.Serializer):
    """Documentation only: the profile is returned as `tabular.ml.profiling` made it."""

    n_rows = serializers.IntegerField()
    n_columns = serializers.IntegerField()
    columns = ProfileColumnSerializer(many=True)
    target = serializers.DictField(allow_null=True)
    suggested_outcome = serializers.DictField(
        help_text="The likely outcome column: `column` (null when none fits), `reason`, `candidates`. The pages "
        "pre-select it; confirm it before training."
    )
    flagged_targets = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Columns refused as a target unless `allow_flagged_target`: column → its flags.",
    )


class CleaningPlanCreateSerializer(serializers.Serializer):
    target = serializers.CharField(max_length=255, help_text="The outcome column the plan prepares the data for.")
    options = serializers.DictField(
        required=False, help_text="Planner options; they may also be sent as top-level keys next to `target`."
    )
    allow_flagged_target = serializers.BooleanField(
        required=False,
        default=False,
        help_text="A target flagged `identifier`, `personal_data` or `high_cardinality` is refused unless true.",
    )


class PlanColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=["keep", "drop"])
    reason = serializers.CharField(allow_blank=True, allow_null=True)
    impute = serializers.CharField(allow_null=True)
    outliers = serializers.CharField(allow_null=True)
    encode = serializers.CharField(allow_null=True)
    scale = serializers.CharField(allow_null=True)


class CleaningPlanSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    dataset = serializers.IntegerField(read_only=True)
    target = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    columns = PlanColumnSerializer(many=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, plan: CleaningPlan):
        # The stored plan carries more than the documented per-column keys (datetime parts, row steps...): keep it.
        return {
            **plan.plan,
            "id": plan.pk,
            "dataset": plan.dataset_id,
            "target": plan.target,
            "status": plan.status,
            "created_at": serializers.DateTimeField().to_representation(plan.created_at),
            "updated_at": serializers.DateTimeField().to_representation(plan.updated_at),
        }


class PlanUpdateSerializer(serializers.Serializer):
    columns = serializers.ListField(
        child=serializers.DictField(),
        help_text='Per-column edits matched by `name`, e.g. [{"name": "age", "impute": "mean"}]; others unchanged.',
    )


class ApplyResultSerializer(serializers.Serializer):
    report = serializers.DictField()
    n_rows_before = serializers.IntegerField()
    n_rows_after = serializers.IntegerField()


class FeatureSelectionRequestSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=list(selection.METHODS))
    k = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="Keep the k best columns.")
    threshold = serializers.FloatField(required=False, allow_null=True, help_text="Keep columns scoring at least this.")


class FeatureSelectionOverrideSerializer(serializers.Serializer):
    selected_columns = serializers.ListField(child=serializers.CharField(), allow_empty=False)


class RankedFeatureSerializer(serializers.Serializer):
    feature = serializers.CharField()
    score = serializers.FloatField()


class FeatureSelectionSerializer(serializers.Serializer):
    cleaning_plan = serializers.IntegerField()
    method = serializers.CharField(allow_null=True)
    k = serializers.IntegerField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    overridden = serializers.BooleanField()
    ranking = RankedFeatureSerializer(many=True)
    selected_columns = serializers.ListField(child=serializers.CharField())

    def to_representation(self, preprocessing):
        config = preprocessing.feature_selector_config or {}
        return {
            "cleaning_plan": preprocessing.cleaning_plan_id,
            "method": config.get("method"),
            "k": config.get("k"),
            "threshold": config.get("threshold"),
            "overridden": bool(config.get("overridden", False)),
            "ranking": [{"feature": feature, "score": score} for feature, score in config.get("ranking", [])],
            "selected_columns": list(preprocessing.selected_columns or []),
        }


class ExtractFeaturesSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(help_text="The dataset to derive from (yours).")
    spec = serializers.DictField(help_text="Which features to derive: datetime parts, ratios, products, ...")
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)
