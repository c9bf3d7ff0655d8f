"""Uploaded tables, their cached profiles and the cleaning plans a clinician reviews before training."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Dataset(models.Model):
    """One uploaded table: the immutable original file, its parsed columnar copy and a summary of its columns."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        EXCEL = "xlsx", "Excel"
        JSON = "json", "JSON"
        PARQUET = "parquet", "Parquet (derived)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=255)
    # Server-made names relative to MEDIA_ROOT (`<user id>/datasets/<uuid>.<ext>`); the client's name is display only.
    file_name = models.CharField(max_length=500, blank=True, help_text="The original bytes, never modified.")
    parquet_name = models.CharField(max_length=500, help_text="The parsed copy, read back for previews and training.")
    original_filename = models.CharField(max_length=255, blank=True, help_text="As uploaded; shown, never used.")
    sha256 = models.CharField(max_length=64, help_text="Fingerprint of the original bytes.")
    format = models.CharField(max_length=10, choices=Format.choices)
    encoding = models.CharField(max_length=40, blank=True)
    delimiter = models.CharField(max_length=5, blank=True)
    sheet = models.CharField(max_length=255, blank=True)
    sheet_names = models.JSONField(default=list, blank=True)
    read_warnings = models.JSONField(default=list, blank=True)
    n_rows = models.PositiveIntegerField(default=0)
    n_columns = models.PositiveIntegerField(default=0)
    columns = models.JSONField(default=list, blank=True, help_text='[{"name", "dtype", "n_missing"}]')
    size_bytes = models.BigIntegerField(default=0, help_text="Size of the original file.")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="versions", help_text="Derived from."
    )
    derivation = models.JSONField(default=dict, blank=True, help_text="How this version was derived from its parent.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "datasets"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="datasets_owner_created")]

    def __str__(self):
        return self.name

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    def stored_names(self) -> list[str]:
        """Every file this row owns, relative to MEDIA_ROOT."""
        return [name for name in (self.file_name, self.parquet_name) if name]


class DatasetProfile(models.Model):
    """A dataset's profile for one target (blank: none), cached because profiling a large table takes seconds."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="profiles")
    target = models.CharField(max_length=255, blank=True)
    profile = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "dataset_profiles"
        constraints = [models.UniqueConstraint(fields=["dataset", "target"], name="dataset_profiles_one_per_target")]

    def __str__(self):
        return f"Profile of {self.dataset_id} for {self.target or 'no target'}"


class CleaningPlan(models.Model):
    """A per-column cleaning recipe for one dataset and target, edited by the clinician before it is applied."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        APPLIED = "applied", "Applied"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cleaning_plans")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="cleaning_plans")
    target = models.CharField(max_length=255)
    plan = models.JSONField(default=dict, help_text="tabular.ml.cleaning.CleaningPlan.to_dict()")
    options = models.JSONField(default=dict, blank=True, help_text="The planner options it was made with.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    report = models.JSONField(default=dict, blank=True, help_text="The cleaning report of the last apply.")
    n_rows_before = models.PositiveIntegerField(null=True, blank=True)
    n_rows_after = models.PositiveIntegerField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "cleaning_plans"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="cleaning_plans_owner_created")]

    def __str__(self):
        return f"Cleaning plan {self.pk} for {self.target}"
