"""Uploaded image collections: the extracted, checked, de-identified files of one ZIP."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ImageDataset(models.Model):
    """One uploaded ZIP of images, stored as server-named files with the intake report."""

    class Purpose(models.TextChoices):
        CLASSIFICATION = "classification", "Classification (one folder per class)"
        ANOMALY = "anomaly", "Anomaly detection (normal images only)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_datasets")
    name = models.CharField(max_length=255)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.CLASSIFICATION)
    # Relative to MEDIA_ROOT: `<user id>/images/<uuid>`; the archive's own paths live only in `files`.
    folder = models.CharField(max_length=500)
    files = models.JSONField(default=list, blank=True, help_text='[{"path", "name", "label", "split", "patient_key"}]')
    classes = models.JSONField(default=list, blank=True)
    class_counts = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True, help_text="Skipped, duplicates, leakage, conversions.")
    n_images = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "image_datasets"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name


class AugmentationJob(models.Model):
    """One augmentation of an uploaded ZIP: N variants per image, delivered as a ZIP to download."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="augmentation_jobs")
    preset = models.CharField(max_length=50)
    per_image = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    # Relative to MEDIA_ROOT: `<user id>/augment/<uuid>/` holds the extracted source until the job ends, then only
    # `result.zip`.
    folder = models.CharField(max_length=500)
    result_name = models.CharField(max_length=500, blank=True)
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "augmentation_jobs"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Augmentation {self.pk} ({self.preset})"
