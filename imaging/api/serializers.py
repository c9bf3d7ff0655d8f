"""Request and response shapes of the imaging API (DESIGN.md §4)."""

from rest_framework import serializers

from imaging.ml.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE
from imaging.ml.training import LEVELS
from imaging.models import AugmentationJob, ImageDataset
from modelhub.models import TrainingModel, TrainingRun


class TrainModelRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="ZIP of one folder per class (optionally inside train/ and val/).")
    architecture = serializers.ChoiceField(choices=list(ARCHITECTURES), default=DEFAULT_ARCHITECTURE)
    level = serializers.ChoiceField(choices=sorted(LEVELS), default=1, help_text="1 (quick) to 5 (thorough).")
    image_size = serializers.IntegerField(required=False, min_value=16, max_value=512)


class AnomalyTrainRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="ZIP of normal images only (at least 10).")
    level = serializers.ChoiceField(choices=[1, 2, 3, 4, 5], default=1)
    image_size = serializers.ChoiceField(choices=[16, 32, 48, 64, 96, 128, 256], default=64, required=False)
    enhanced = serializers.BooleanField(
        default=False,
        required=False,
        help_text="Enhanced mode: Isolation Forest, Local Outlier Factor and One-Class SVM on the encoder's features, "
        "ensembled with the reconstruction error. Scores are then in [0, 1] (a weighted mean of the four detectors' "
        "ranks among normal validation images, weights from pasted-patch pseudo-anomalies) and each result lists the "
        "components.",
    )
    mode = serializers.ChoiceField(
        choices=["patchcore", "autoencoder", "ensemble"],
        required=False,
        help_text="Which detector to train. `patchcore` (the default): nearest-neighbour distance of each image "
        "patch's pretrained EfficientNet-Lite0 features to a memory bank of normal patches (greedy coreset), and of "
        "a whole-image descriptor to those of the normal images; the score is the larger, in standard deviations "
        "above normal images, and every scored image gets a pixel map. `autoencoder`: reconstruction error. "
        "`ensemble`: the autoencoder's enhanced ensemble (as `enhanced=true`). The level sets the autoencoder's epochs "
        "or the share of patch features PatchCore keeps.",
    )


class RunCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=TrainingRun.Status.choices)


class ImageFilesRequestSerializer(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(), help_text="One or more images (PNG, JPEG, TIFF, BMP, DICOM) or a ZIP of them."
    )
    model_id = serializers.IntegerField()


class PredictionSerializer(serializers.Serializer):
    file = serializers.CharField()
    label = serializers.CharField(required=False)
    confidence = serializers.FloatField(required=False)
    probabilities = serializers.DictField(child=serializers.FloatField(), required=False)
    heatmap = serializers.CharField(required=False, help_text="Grad-CAM overlay as a PNG data URL.")
    error = serializers.CharField(required=False, help_text="Why this file could not be read; the others still count.")
    code = serializers.CharField(required=False)


class PredictResponseSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    predictions = PredictionSerializer(many=True)


class AnomalyResultSerializer(serializers.Serializer):
    file = serializers.CharField()
    score = serializers.FloatField(required=False)
    threshold = serializers.FloatField(required=False)
    is_anomaly = serializers.BooleanField(required=False)
    mode = serializers.ChoiceField(
        choices=["patchcore", "reconstruction", "enhanced"], required=False, help_text="How `score` was computed."
    )
    reconstruction_error = serializers.FloatField(
        required=False, help_text="Autoencoder detectors: the reconstruction error of this image."
    )
    map_peak = serializers.FloatField(
        required=False, help_text="PatchCore detectors: the highest value of the smoothed pixel map (score units)."
    )
    map_size = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="Width and height of `heatmap`: the image's own size (longest side at most 1024 px).",
    )
    components = serializers.DictField(
        child=serializers.FloatField(),
        required=False,
        help_text="Enhanced models only: each detector's rank among normal validation images (0–1; higher is more "
        "unusual): reconstruction, isolation_forest, local_outlier_factor, one_class_svm. `score` is their mean.",
    )
    heatmap = serializers.CharField(
        required=False,
        help_text="The anomaly map laid over the image at the image's own size, as a PNG data URL (PatchCore: patch "
        "distances, blue at a typical normal patch, red at the image threshold and above; autoencoder: "
        "reconstruction error).",
    )
    error = serializers.CharField(required=False)
    code = serializers.CharField(required=False)


class AnomalyScoreResponseSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    results = AnomalyResultSerializer(many=True)


class ImagingRunSerializer(serializers.ModelSerializer):
    model_id = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "message",
            "error",
            "config",
            "created_at",
            "started_at",
            "finished_at",
            "model_id",
        ]
        read_only_fields = fields

    def get_model_id(self, run) -> int | None:
        model = run.models.order_by("-id").first()
        return model.id if model else None


class ImagingModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingModel
        fields = ["id", "run", "model_name", "metric_name", "metric_value", "metrics", "created_at"]
        read_only_fields = fields


class ImageDatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImageDataset
        fields = ["id", "name", "purpose", "n_images", "classes", "class_counts", "report", "created_at"]
        read_only_fields = fields


class AugmentRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="ZIP of images; class folders are kept in the result.")
    preset = serializers.CharField(help_text="An augmentation preset, e.g. chest_xray (never flips).")
    per_image = serializers.IntegerField(min_value=1, max_value=20, default=3)


class AugmentPreviewRequestSerializer(serializers.Serializer):
    file = serializers.ListField(child=serializers.FileField(), help_text="Up to 4 images.")
    preset = serializers.CharField()


class AugmentPreviewSerializer(serializers.Serializer):
    preview = serializers.CharField(help_text="PNG data URL: one row per image, the original first.")


class AugmentationJobSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = AugmentationJob
        fields = [
            "id",
            "status",
            "preset",
            "per_image",
            "progress",
            "message",
            "error",
            "report",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, job) -> str | None:
        return f"/api/v1/augment/{job.id}/download" if job.status == AugmentationJob.Status.SUCCEEDED else None


class PipelineRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="ZIP of class folders (or of normal images for train_anomaly).")
    steps = serializers.JSONField(
        help_text='Ordered list of {"type", "params"}: resize, normalize, clahe, denoise, augment, then '
        "train_classifier or train_anomaly last."
    )


class ThresholdRequestSerializer(serializers.Serializer):
    threshold = serializers.FloatField(help_text="The new score above which an image is flagged.")
