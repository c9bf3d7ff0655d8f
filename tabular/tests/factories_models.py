"""Real trained models for serving and model-hub tests: tiny data, one or two models, level 1, three folds."""

import numpy as np
import pandas as pd
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelhub.models import TrainingModel, TrainingRun
from tabular.bundles import model_bundle_build, model_bundle_save
from tabular.ml.schema import InputSchema
from tabular.ml.training import train_models
from tabular.services import dataset_create


def patients_frame(n_rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Age drives the outcome; BMI is noise; smoker is a category."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 90, n_rows).astype(float)
    return pd.DataFrame(
        {
            "age": age,
            "bmi": np.round(rng.normal(27, 4, n_rows), 1),
            "smoker": rng.choice(["yes", "no"], n_rows),
            "outcome": np.where(age + rng.normal(0, 10, n_rows) > 55, "sick", "well"),
        }
    )


def _preprocessor() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), make_column_selector(dtype_include="number")),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )


def trained_models(user, *, models=("logistic_regression",), n_rows: int = 120, seed: int = 0):
    """Upload the table as a dataset, train `models`, save one bundle and TrainingModel row each."""
    frame = patients_frame(n_rows, seed)
    dataset = dataset_create(
        user=user,
        uploaded_file=SimpleUploadedFile("patients.csv", frame.to_csv(index=False).encode(), content_type="text/csv"),
    )
    X, y = frame.drop(columns=["outcome"]), frame["outcome"]
    result = train_models(X, y, preprocessor=_preprocessor(), models=list(models), level=1, cv_folds=3, n_bootstrap=50)
    run = TrainingRun.objects.create(
        user=user,
        kind=TrainingRun.Kind.TABULAR,
        status=TrainingRun.Status.SUCCEEDED,
        dataset_type="tabular.dataset",
        dataset_id=str(dataset.pk),
        config={"target": "outcome", "level": 1, "primary_metric": "roc_auc"},
    )
    rows = []
    for model_result in result.models:
        bundle = model_bundle_build(
            model_result=model_result,
            training_result=result,
            schema=InputSchema.from_frame(X),
            target="outcome",
            dataset=dataset,
            cleaning_plan=None,
            plan_dict={},
            warnings=[{"code": "small_sample", "message": "Only a few patients: intervals are wide."}],
            cleaning_report={"steps": ["Missing ages filled with the median."]},
        )
        stored = model_bundle_save(bundle, user_id=user.pk, run_id=run.pk)
        rows.append(
            TrainingModel.objects.create(
                user=user,
                run=run,
                model_name=model_result.name,
                file_name=stored.file_name,
                sha256=stored.sha256,
                size=stored.size,
                metric_name="roc_auc",
                metric_value=model_result.metrics["roc_auc"],
                metrics=model_result.to_dict()["metrics"],
            )
        )
    return rows
