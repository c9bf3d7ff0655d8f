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
