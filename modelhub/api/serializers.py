"""Model hub API shapes."""

from rest_framework import serializers

from modelhub.hub import model_days_left, model_kind
from modelhub.models import TrainingModel


class TrainingModelSerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    threshold = serializers.SerializerMethodField()
    run = serializers.IntegerField(source="run_id", read_only=True)
    days_left = serializers.SerializerMethodField(help_text="Days before retention removes it; null when kept.")

    class Meta:
        model = TrainingModel
        fields = [
            "id",
            "model_name",
            "kind",
            "metric_name",
            "metric_value",
            "metrics",
            "threshold",
            "is_selected",
            "pinned",
            "size",
            "sha256",
            "created_at",
            "run",
            "days_left",
        ]
        read_only_fields = fields

    def get_kind(self, obj) -> str:
        return model_kind(obj)

    def get_threshold(self, obj) -> float | None:
        # The threshold lives in the bundle; training also copies it into metrics so lists need no unpickling.
        value = (obj.metrics or {}).get("threshold")
        return float(value) if isinstance(value, int | float) else None

    def get_days_left(self, obj) -> int | None:
        return model_days_left(obj)


class ImportanceSerializer(serializers.Serializer):
    feature = serializers.CharField()
    importance = serializers.FloatField()
    std = serializers.FloatField(required=False)


class FeatureImportanceSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    source = serializers.CharField()
    permutation = ImportanceSerializer(many=True, allow_null=True)
    model = ImportanceSerializer(many=True, allow_null=True)
    computed_at = serializers.CharField(allow_null=True, help_text="When it was computed (ISO 8601); then stored.")


class SelectionChoiceSerializer(serializers.Serializer):
    """What /select_model would select, and where it looked (a SelectionChoice)."""

    model = TrainingModelSerializer()
    run = serializers.IntegerField(source="run.pk")
    run_name = serializers.CharField(source="run.__str__")
    metric = serializers.CharField()
    metric_value = serializers.FloatField(allow_null=True)


class SelectedSerializer(serializers.Serializer):
    """The answer of POST /select_model/<name>/<metric> (the original system's shape)."""

    id = serializers.IntegerField()
    model_name = serializers.CharField()
    metric = serializers.CharField()
    is_selected = serializers.BooleanField()


class PinRequestSerializer(serializers.Serializer):
    pinned = serializers.BooleanField(default=True, help_text="true pins (kept past retention), false unpins.")


class ImputationSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="median, mean, most_frequent, constant, knn or iterative.")
    value = serializers.JSONField(required=False, help_text="The value an empty cell becomes (not for knn/iterative).")


class InputColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="number, boolean, category, date or text.")
    required = serializers.BooleanField()
    allowed = serializers.ListField(
        child=serializers.JSONField(), required=False, help_text="The values seen in training (categories, yes/no)."
    )
    range = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        min_length=2,
        max_length=2,
        help_text="[lowest, highest] in the training rows (numbers; models trained since this was recorded).",
    )
    impute = ImputationSerializer(required=False, help_text="What an empty value is filled with.")


class ModelSchemaSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    target = serializers.CharField(allow_null=True)
    columns = InputColumnSerializer(many=True)


class ModelReportSerializer(serializers.Serializer):
    """The report's figures; tabular models have every key, image models the common ones plus metrics/config."""

    model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    kind = serializers.CharField()
    run = serializers.DictField()
    created_at = serializers.CharField()
    sha256 = serializers.CharField()
    is_selected = serializers.BooleanField()
    pinned = serializers.BooleanField()
    days_left = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField()
    label = serializers.CharField(required=False)
    target = serializers.CharField(required=False, allow_null=True)
    class_labels = serializers.ListField(child=serializers.JSONField(), required=False)
    positive_label = serializers.JSONField(required=False)
    threshold = serializers.FloatField(required=False, allow_null=True)
    calibration = serializers.DictField(required=False)
    intervals = serializers.DictField(required=False)
    confusion_matrix = serializers.DictField(required=False)
    curves = serializers.DictField(required=False)
    validation = serializers.DictField(required=False)
    predictors = serializers.ListField(child=serializers.DictField(), required=False)
    dataset = serializers.DictField(required=False)
    cleaning_report = serializers.DictField(required=False)
    warnings = serializers.ListField(child=serializers.DictField(), required=False)
    versions = serializers.DictField(required=False)
    config = serializers.DictField(required=False)


class DeleteTrainingRunRequestSerializer(serializers.Serializer):
    run_id = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, help_text="The id of one of your finished training runs."
    )


class DeletedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    run_id = serializers.IntegerField()
