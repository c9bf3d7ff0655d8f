"""Training runs, the models they produce and the preprocessing they used (tables of the original system)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class TrainingRun(models.Model):
    """One training job (tabular, image or anomaly) with its status, progress and outcome."""

    class Kind(models.TextChoices):
        TABULAR = "tabular", "Tabular classification"
        IMAGE = "image", "Image classification"
        ANOMALY = "anomaly", "Anomaly detection"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    TERMINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.STOPPED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_runs")
    run_name = models.CharField(max_length=255, blank=True)
    prompt = models.TextField(blank=True, help_text="What the user asked for, in their words.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    message = models.CharField(max_length=500, blank=True, help_text="The current step, shown to the user.")
    error = models.TextField(blank=True, help_text="Why the run failed, in words the user can act on.")
    config = models.JSONField(default=dict, blank=True)
    # Datasets live in other apps (tabular, imaging); a generic pair keeps this table independent of them.
    dataset_type = models.CharField(max_length=50, blank=True)
    dataset_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    stop_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker; the stale-run sweep reads it."
    )

    class Meta:
        db_table = "training_runs"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="training_runs_user_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__gte=0.0) & models.Q(progress__lte=1.0), name="training_runs_progress_0_1"
            ),
        ]

    def __str__(self):
        return self.run_name or f"{self.get_kind_display()} run {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES

    def _claim(self, allowed_from, *, only_if: models.Q | None = None, **changes) -> bool:
        """Apply `changes` only if the row is still in one of `allowed_from`: two processes never both win."""
        rows = TrainingRun.objects.filter(pk=self.pk, status__in=allowed_from)
        if only_if is not None:
            rows = rows.filter(only_if)
        claimed = rows.update(**changes)
        if claimed:
            for field, value in changes.items():
                setattr(self, field, value)
        else:
            self.refresh_from_db()
        return bool(claimed)

    def start(self, *, celery_task_id: str = "", message: str = "Starting") -> bool:
        """Queued → running. False when the run was already taken, stopped or finished."""
        now = timezone.now()
        changes = {"status": self.Status.RUNNING, "started_at": now, "heartbeat_at": now, "message": message}
        if celery_task_id:
            changes["celery_task_id"] = celery_task_id
        return self._claim((self.Status.QUEUED,), only_if=models.Q(stop_requested=False), **changes)

    def set_progress(self, progress: float, message: str | None = None) -> bool:
        """Record progress (clamped to 0..1) and a heartbeat. False when the run is no longer running."""
        changes = {"progress": min(max(float(progress), 0.0), 1.0), "heartbeat_at": timezone.now()}
        if message is not None:
            changes["message"] = message[:500]
        return self._claim((self.Status.RUNNING,), **changes)

    def finish(self, status: str, *, error: str = "", message: str | None = None) -> bool:
        """Queued/running → succeeded, failed or stopped. False when another process finished it first."""
        if status not in self.TERMINAL_STATUSES:
            raise ValueError(f"finish() needs a terminal status, not {status!r}")
        changes = {"status": status, "finished_at": timezone.now(), "error": error}
        if status == self.Status.SUCCEEDED:
            changes["progress"] = 1.0
        if message is not None:
            changes["message"] = message[:500]
        return self._claim(self.ACTIVE_STATUSES, **changes)

    def request_stop(self) -> bool:
        """Ask the run to stop: a queued run stops at once, a running one at its next step. False if already over."""
        if self._claim(
            (self.Status.QUEUED,),
            status=self.Status.STOPPED,
            stop_requested=True,
            finished_at=timezone.now(),
            message="Stopped before it started.",
        ):
            return True
        return self._claim((self.Status.RUNNING,), stop_requested=True, message="Stopping after the current step.")

    def stop_is_requested(self) -> bool:
        """Read the flag from the database: the request comes from another process."""
        return TrainingRun.objects.filter(pk=self.pk, stop_requested=True).exists()


class TrainingModel(models.Model):
    """One trained model: its artefact file, headline metric and every other metric."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_models")
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="models")
    model_name = models.CharField(max_length=100)
    model_url = models.CharField(max_length=500, blank=True, help_text="Where the artefact is downloaded from.")
    file_name = models.CharField(max_length=500, blank=True, help_text="The artefact, relative to MEDIA_ROOT.")
    metric_name = models.CharField(max_length=50, blank=True)
    metric_value = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    metrics = models.JSONField(default=dict, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Checked before the artefact is loaded.")
    is_selected = models.BooleanField(default=False, help_text="Selected models are never removed by retention.")
    pinned = models.BooleanField(default=False, help_text="Pinned models are never removed by retention.")
    size = models.BigIntegerField(default=0, help_text="Artefact size in bytes.")
    # Computed once (at training, or on the first request for models trained before it was) and served as stored:
    # permutation importance on the hold-out rows can take a minute, far too long for a request.
    feature_importance = models.JSONField(
        null=True, blank=True, help_text="Permutation and model importances, computed once from the hold-out rows."
    )
    input_ranges = models.JSONField(
        null=True, blank=True, help_text="Lowest and highest value of each numeric input in the training rows."
    )

    class Meta:
        db_table = "training_models"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="training_models_user_created")]

    def __str__(self):
        return f"{self.model_name} (run {self.run_id})"

    def artifact_references(self) -> list[str]:
        """The stored names of this model's files: `file_name`, and `model_url` when it points into MEDIA_URL."""
        references = [self.file_name] if self.file_name else []
        if self.model_url.startswith(settings.MEDIA_URL):
            references.append(self.model_url.removeprefix(settings.MEDIA_URL))
        return references


class PreprocessingData(models.Model):
    """How a run's data was cleaned and which features were kept."""

    # A reviewed cleaning plan is recorded here when it is applied, before any run exists; training links the run.
    run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.CASCADE, related_name="preprocessing")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preprocessing_data")
    cleaning_plan = models.ForeignKey(
        "tabular.CleaningPlan", null=True, blank=True, on_delete=models.SET_NULL, related_name="preprocessing"
    )
    cleaner_config = models.JSONField(default=dict, blank=True)
    feature_selector_config = models.JSONField(default=dict, blank=True)
    original_columns = models.JSONField(default=list, blank=True)
    selected_columns = models.JSONField(default=list, blank=True)
    cleaning_report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "preprocessing_data"
        ordering = ["-created_at", "-id"]
        verbose_name = "preprocessing data"
        verbose_name_plural = "preprocessing data"

    def __str__(self):
        if self.run_id is None:
            return f"Preprocessing of cleaning plan {self.cleaning_plan_id}"
        return f"Preprocessing of run {self.run_id}"
