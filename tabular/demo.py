"""The sample dataset `manage.py load_demo` gives the demo user: Wisconsin breast-cancer data made hospital-like."""

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.datasets import load_breast_cancer

from .models import Dataset
from .services import dataset_create

DEMO_DATASET_NAME = "Breast cancer (Wisconsin) — demo"
_FIRST_NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin", "Lukas"]
_LAST_NAMES = ["Meyer", "Schmidt", "Dubois", "Rossi", "Novak", "Jensen", "Silva", "Kowalski", "Smith", "Garcia"]


def breast_cancer_csv(*, n_blanked: int = 40, seed: int = 7) -> bytes:
    """The 569 rows as CSV with `n_blanked` empty cells, a fake `patient_name` and a `patient_id`, as exports have.

    The names are made up; they are there so the profile can show how personal data is flagged and dropped.
    """
    data = load_breast_cancer(as_frame=True)  # shipped inside scikit-learn: no download
    frame = data.frame.drop(columns="target")
    values = frame.to_numpy(dtype="float64", copy=True)
    cells = np.random.default_rng(seed).choice(values.size, size=n_blanked, replace=False)
    values[np.unravel_index(cells, values.shape)] = np.nan
    frame.loc[:, :] = values
    frame.insert(0, "patient_id", [f"P{100000 + index}" for index in range(len(frame))])
    names = [f"{_FIRST_NAMES[i % 12]} {_LAST_NAMES[(i * 7) % 10]}" for i in range(len(frame))]
    frame.insert(1, "patient_name", names)
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame.to_csv(index=False).encode()


def demo_dataset_ensure(*, user) -> tuple[Dataset, bool]:
    """The demo user's sample dataset; created once, found again on every later run."""
    existing = Dataset.objects.filter(owner=user, name=DEMO_DATASET_NAME).first()
    if existing is not None:
        return existing, False
    upload = SimpleUploadedFile("breast_cancer_demo.csv", breast_cancer_csv(), content_type="text/csv")
    return dataset_create(user=user, uploaded_file=upload, name=DEMO_DATASET_NAME), True
