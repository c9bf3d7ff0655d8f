"""Celery tasks of the tabular app, on the `tabular` queue (routed by name in deepmed/celery.py). Thin: ids in."""

from celery import shared_task

from . import training


@shared_task(name="tabular.tasks.train_tabular_run", bind=True, queue="tabular")
def train_tabular_run(self, run_id: int) -> str:
    """Train the models of one queued tabular run; the service stores each model as it finishes."""
    run = training.training_run_execute(run_id=run_id, celery_task_id=self.request.id or "")
    return run.status if run is not None else "missing"
