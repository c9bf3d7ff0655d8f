from django.contrib import admin

from .models import PreprocessingData, TrainingModel, TrainingRun


class TrainingModelInline(admin.TabularInline):
    model = TrainingModel
    extra = 0
    fields = ("model_name", "metric_name", "metric_value", "is_selected", "pinned", "size", "created_at")
    readonly_fields = ("model_name", "metric_name", "metric_value", "size", "created_at")
    show_change_link = True
    can_delete = False


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "run_name", "user", "kind", "status", "progress", "created_at", "finished_at")
    list_filter = ("status", "kind", ("user", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("run_name", "user__email", "celery_task_id", "message", "error")
    readonly_fields = ("created_at", "started_at", "finished_at", "heartbeat_at", "celery_task_id")
    raw_id_fields = ("user",)
    date_hierarchy = "created_at"
    inlines = [TrainingModelInline]
    list_select_related = ("user",)


@admin.register(TrainingModel)
class TrainingModelAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "model_name",
        "user",
        "run",
        "metric_name",
        "metric_value",
        "is_selected",
        "pinned",
        "size",
        "created_at",
    )
    list_filter = ("is_selected", "pinned", "run__kind", ("user", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("model_name", "file_name", "user__email", "run__run_name", "sha256")
    # The artefact's identity is written by training; changing it here would break the checksum check.
    readonly_fields = ("created_at", "sha256", "size", "file_name")
    raw_id_fields = ("user", "run")
    list_select_related = ("user", "run")


@admin.register(PreprocessingData)
class PreprocessingDataAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "user", "created_at")
    list_filter = ("run__kind", ("user", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("user__email", "run__run_name")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user", "run")
    list_select_related = ("user", "run")
