"""Imaging pages: the pipeline page (train a classifier, predict) and the anomaly page. Work happens in the API."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from modelhub.models import TrainingRun

from . import selectors
from .ml.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE, default_weights_dir, torchvision_weights_filename
from .ml.training import LEVELS
from .models import AugmentationJob
from .pipeline_outputs import pipeline_run_list_for_user


def _weights_note(name: str) -> str:
    """Which starting weights an architecture will use here, in words for the form."""
    if name == DEFAULT_ARCHITECTURE:
        return "ImageNet weights (shipped with the platform)"
    if (default_weights_dir() / torchvision_weights_filename(name)).is_file():
        return "ImageNet weights (installed by the administrator)"
    return "no pretrained weights here: trained from scratch, needs more images"


def images_redirect(request):
    return redirect("imaging-pipeline")


@login_required
def pipeline_page(request):
    context = {
        "architectures": [
            {"name": name, "label": label, "weights": _weights_note(name), "default": name == DEFAULT_ARCHITECTURE}
            for name, label in ARCHITECTURES.items()
        ],
        "levels": [{"level": level, "preset": preset} for level, preset in LEVELS.items()],
        "image_size": settings.IMAGE_SIZE,
        "models": selectors.imaging_model_list_for_user(user=request.user, kind=TrainingRun.Kind.IMAGE)[:20],
        "pipeline_runs": pipeline_run_list_for_user(user=request.user)[:5],
    }
    return render(request, "imaging/pipeline.html", context)


@login_required
def anomaly_page(request):
    context = {
        "levels": [1, 2, 3, 4, 5],
        "models": selectors.imaging_model_list_for_user(user=request.user, kind=TrainingRun.Kind.ANOMALY)[:20],
    }
    return render(request, "imaging/anomaly.html", context)


@login_required
def augment_page(request):
    from .ml.augmentation import describe_presets

    jobs = AugmentationJob.objects.filter(owner=request.user)[:10]
    return render(request, "imaging/augment.html", {"presets": describe_presets(), "jobs": jobs})
