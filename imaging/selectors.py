"""Reads for the imaging views: always filtered by owner, other users' rows are 404."""

from deepmed.exceptions import NotFound
from modelhub.models import TrainingModel, TrainingRun

IMAGING_KINDS = (TrainingRun.Kind.IMAGE, TrainingRun.Kind.ANOMALY)


def imaging_run_get_for_user(*, user, run_id: int) -> TrainingRun:
    """An image or anomaly run of this user, else 404."""
    run = TrainingRun.objects.filter(user=user, id=run_id, kind__in=IMAGING_KINDS).first()
    if run is None:
        raise NotFound("No imaging run of yours has this id.")
    return run


def imaging_model_list_for_user(*, user, kind: str):
    """This user's models of one imaging kind, newest first."""
    return TrainingModel.objects.filter(user=user, run__kind=kind).select_related("run").order_by("-created_at", "-id")


def imaging_model_get_for_user(*, user, model_id: int) -> TrainingModel:
    """An image classifier or anomaly detector of this user, else 404."""
    model = TrainingModel.objects.filter(user=user, id=model_id, run__kind__in=IMAGING_KINDS).first()
    if model is None:
        raise NotFound("No imaging model of yours has this id.")
    return model


def augmentation_job_get_for_user(*, user, job_id: int):
    """An augmentation job of this user, else 404."""
    from .models import AugmentationJob

    job = AugmentationJob.objects.filter(owner=user, id=job_id).first()
    if job is None:
        raise NotFound("No augmentation of yours has this id.")
    return job


def image_dataset_list_for_user(*, user):
    """This user's image datasets, newest first."""
    from .models import ImageDataset

    return ImageDataset.objects.filter(owner=user).order_by("-created_at", "-id")


def image_dataset_get_for_user(*, user, dataset_id: int):
    """An image dataset of this user, else 404."""
    dataset = image_dataset_list_for_user(user=user).filter(id=dataset_id).first()
    if dataset is None:
        raise NotFound("No image dataset of yours has this id.")
    return dataset
