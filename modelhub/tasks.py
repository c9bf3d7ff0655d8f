"""Periodic jobs of the model hub (scheduled in deepmed/celery.py). Thin wrappers: the services do the work."""

from celery import shared_task

from . import services


@shared_task(name="modelhub.tasks.retention_sweep")
def retention_sweep() -> dict:
    """Daily: delete models and preprocessing rows older than RETENTION_DAYS, and their files."""
    report = services.retention_sweep()
    return {"models_deleted": report.models_deleted, "preprocessing_deleted": report.preprocessing_deleted}


@shared_task(name="modelhub.tasks.mark_stale_runs")
def mark_stale_runs() -> list[int]:
    """Every few minutes: fail runs whose worker stopped reporting progress."""
    return services.training_run_fail_stale()
