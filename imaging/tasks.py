"""Celery tasks of the `imaging` queue: they take ids and call the services, which record the outcome on the run."""

from celery import shared_task

from . import services


@shared_task(name="imaging.tasks.train_image_classifier", ignore_result=True)
def train_image_classifier(run_id: int) -> None:
    services.image_training_execute(run_id=run_id)


@shared_task(name="imaging.tasks.train_anomaly_detector", ignore_result=True)
def train_anomaly_detector(run_id: int) -> None:
    services.anomaly_training_execute(run_id=run_id)


@shared_task(name="imaging.tasks.augment_images", ignore_result=True)
def augment_images(job_id: int) -> None:
    services.augmentation_execute(job_id=job_id)


@shared_task(name="imaging.tasks.run_image_pipeline", ignore_result=True)
def run_image_pipeline(run_id: int) -> None:
    services.pipeline_execute(run_id=run_id)
