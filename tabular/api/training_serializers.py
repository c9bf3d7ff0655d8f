"""Request and response shapes of the tabular training API (they also drive the OpenAPI schema)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deepmed.api_schema import ErrorSerializer  # noqa: F401  (re-exported for the views)
from modelhub.models import TrainingModel, TrainingRun
from tabular import selectors
from tabular.ml import selection
from tabular.ml import training as ml_training
from tabular.ml.models import MODEL_NAMES


class FeatureSelectionOptionSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=selection.METHODS)
    k = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    threshold = serializers.FloatField(required=False, allow_null=True)


class TrainingRunCreateSerializer(serializers.Serializer):
    """What to train. Unknown model names, levels outside 1–5 and unknown columns are refused with 400."""

    dataset = serializers.IntegerField(help_text="Id of one of your datasets.")
    target = serializers.CharField(help_text="The outcome column.")
    cleaning_plan = serializers.IntegerField(
        required=False, allow_null=True, help_text="Id of a cleaning plan of this dataset; default: the automatic plan."
    )
    models = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_empty=False,
        help_text=f"Any of {', '.join(MODEL_NAMES)}; default: all.",
    )
    level = serializers.IntegerField(required=False, default=2, help_text="Search intensity, 1 (small grid) to 5.")
    cv_folds = serializers.IntegerField(required=False, default=5, help_text="Cross-validation folds, 2 to 10.")
    imbalance = serializers.CharField(required=False, default="class_weight", help_text="none, smote or class_weight.")
    feature_selection = FeatureSelectionOptionSerializer(required=False, allow_null=True)
    run_name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    group_column = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="e.g. a patient ID: folds never split a group."
    )
    primary_metric = serializers.CharField(
        required=False, default="roc_auc", help_text=f"One of {', '.join(ml_training.PRIMARY_METRICS)}."
    )
    target_sensitivity = serializers.FloatField(
        required=False, allow_null=True, help_text="Set the threshold for this sensitivity instead of Youden's J."
    )
    allow_flagged_target = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "A target flagged `identifier`, `personal_data` or `high_cardinality` is refused with 400 (the code "
            "names the flag) unless this is true."
        ),
    )
    use_saved_selection = serializers.BooleanField(
        required=False,
        default=True,
        help_text=(
            "Apply the feature selection saved for this dataset and outcome (the run's `features` lists the "
            "predictors used); false trains on every column the cleaning plan keeps."
        ),
    )


class TrainingRunCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=TrainingRun.Status.choices)


class TrainingModelSummarySerializer(serializers.ModelSerializer):
    intervals = serializers.SerializerMethodField()
    threshold = serializers.SerializerMethodField()

    class Meta:
        model = TrainingModel
        fields = ["id", "model_name", "metric_name", "metric_value", "metrics", "intervals", "threshold"]

    def get_intervals(self, model) -> dict:
        return model.metrics.get("intervals", {})

    def get_threshold(self, model) -> float | None:
        return model.metrics.get("threshold")


class TrainingRunStatusSerializer(serializers.ModelSerializer):
    """A run with its models, best first by the primary metric."""

    models = serializers.SerializerMethodField()
    features = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "kind",
            "run_name",
            "status",
            "progress",
            "message",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "config",
            "features",
            "models",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_features(self, run) -> list[str] | None:
        """The predictors the models were trained on (dataset columns); null for image runs."""
        return selectors.training_run_features(run=run)

    @extend_schema_field(TrainingModelSummarySerializer(many=True))
    def get_models(self, run) -> list:
        ranked = sorted(run.models.all(), key=lambda m: (m.metric_value is None, -(m.metric_value or 0.0), m.pk))
        return TrainingModelSummarySerializer(ranked, many=True).data
