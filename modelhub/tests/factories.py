"""factory_boy factories for the model hub tables; pass `user=` to own the rows."""

from datetime import timedelta

import factory
from django.utils import timezone

from modelhub.models import PreprocessingData, TrainingModel, TrainingRun


class TrainingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingRun

    run_name = factory.Sequence(lambda n: f"Run {n}")
    kind = TrainingRun.Kind.TABULAR
    config = factory.LazyFunction(lambda: {"target": "outcome", "level": 1})


class RunningTrainingRunFactory(TrainingRunFactory):
    status = TrainingRun.Status.RUNNING
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=1))
    heartbeat_at = factory.LazyFunction(timezone.now)


class TrainingModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingModel

    run = factory.SubFactory(TrainingRunFactory, user=factory.SelfAttribute("..user"))
    model_name = "random_forest"
    metric_name = "roc_auc"
    metric_value = 0.81
    metrics = factory.LazyFunction(lambda: {"roc_auc": 0.81, "accuracy": 0.77})


class PreprocessingDataFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PreprocessingData

    run = factory.SubFactory(TrainingRunFactory, user=factory.SelfAttribute("..user"))
    original_columns = factory.LazyFunction(lambda: ["age", "sex", "bmi", "outcome"])
    selected_columns = factory.LazyFunction(lambda: ["age", "bmi"])
