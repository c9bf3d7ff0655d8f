"""Issue 12 #12: a downloaded tabular model loads and predicts with only the libraries its README pins.

The ZIP is unpacked in a temporary folder and used by a separate Python process that starts isolated (`-I`: no
PYTHONPATH, no script or working directory on sys.path) and without site-packages (`-S`); its sys.path then gets
only the pinned distributions (and what they themselves require, from their metadata), linked one by one into a
folder of their own. DeepMed, Django and everything else installed here are not importable there: checked first.
"""

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from modelhub.models import TrainingModel
from tabular.tests.factories_models import patients_frame

REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def _required_distributions(pinned: list[str]) -> set[str]:
    """The pinned distributions and, transitively, what their metadata says they require (extras left out)."""
    wanted, seen = list(pinned), set()
    while wanted:
        name = wanted.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for requirement in metadata.requires(name) or []:
            if "extra ==" in requirement:
                continue
            marker = requirement.split(";", 1)[1] if ";" in requirement else ""
            if "python_version <" in marker or 'sys_platform == "win32"' in marker:
                continue
            wanted.append(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group(0))
    return seen


def _site_with_only(distributions: set[str], folder: Path) -> Path:
    """A folder holding links to the top-level files and packages of these distributions, and nothing else."""
    folder.mkdir()
    for name in distributions:
        for file in metadata.distribution(name).files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            source = Path(file.locate()).resolve()
            while source.name != top:
                source = source.parent
            if not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


DRIVER = """
import json, sys
here, site = sys.argv[1], sys.argv[2]
sys.path.append(site)
for name in ("deepmed", "django", "tabular", "modelhub", "rest_framework"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable: the check is not clean")
sys.path.insert(0, here)
import deepmed_runtime
model = deepmed_runtime.load(here)
rows = json.load(open(sys.argv[3]))
probabilities = model.predict_proba(rows)
json.dump({
    "labels": [str(label) for label in model.predict(rows)],
    "probabilities": probabilities.to_dict(orient="records"),
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
}, sys.stdout)
"""


@pytest.fixture
def platform_model(alice, settings, tmp_path, django_capture_on_commit_callbacks) -> TrainingModel:
    """A model trained by a real platform run (DeepMed's cleaning steps, calibrated classifier and threshold)."""
    from tabular import training
    from tabular.services import dataset_create

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    frame = patients_frame(160, seed=4)
    frame.loc[::7, "bmi"] = None
    upload = SimpleUploadedFile("patients.csv", frame.to_csv(index=False).encode(), content_type="text/csv")
    dataset = dataset_create(user=alice, uploaded_file=upload)
    with django_capture_on_commit_callbacks(execute=True):
        run = training.training_run_start(
            user=alice, dataset=dataset, target="outcome", models=["logistic_regression", "svm"], level=1, cv_folds=3
        )
    return TrainingModel.objects.get(run=run, model_name="logistic_regression")


def test_the_downloaded_zip_predicts_with_only_the_pinned_libraries(alice, platform_model, tmp_path):
    response = _bearer(alice).get(f"/download_model/{platform_model.pk}")
    assert response.status_code == 200, response.content[:300]
    unpacked = tmp_path / "model"
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(unpacked)
    readme = (unpacked / "README.txt").read_text()
    requirements = (unpacked / "requirements.txt").read_text().split()
    pinned = [REQUIREMENT.match(line).group(1) for line in requirements]
    assert {"scikit-learn", "pandas", "numpy", "scipy", "joblib"} <= set(pinned)
    for line in requirements:
        name, version = REQUIREMENT.match(line).groups()
        assert metadata.version(name) == version
        assert line in readme, "the README lists every pinned library"
    assert "deepmed" not in " ".join(pinned).lower()

    site = _site_with_only(_required_distributions(pinned), tmp_path / "site")
    rows = patients_frame(12, seed=21).drop(columns=["outcome"])
    rows.loc[0, "bmi"] = None  # an empty value is filled by the pipeline, as in training
    records = json.loads(rows.to_json(orient="records"))
    (tmp_path / "rows.json").write_text(json.dumps(records))
    (tmp_path / "driver.py").write_text(DRIVER)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON") and key != "DJANGO_SETTINGS_MODULE"
    }

    # The clean interpreter really cannot see DeepMed.
    plain = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import deepmed"], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert plain.returncode != 0 and "No module named 'deepmed'" in plain.stderr

    command = [
        sys.executable,
        "-I",
        "-S",
        str(tmp_path / "driver.py"),
        str(unpacked),
        str(site),
        str(tmp_path / "rows.json"),
    ]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout)
    assert not {"deepmed", "django", "modelhub"} & set(answer["modules"])

    # The same answers as the platform gives for these rows.
    served = (
        _bearer(alice)
        .post("/api/predict_tabular", {"model_id": platform_model.pk, "rows": records}, format="json")
        .json()["predictions"]
    )
    assert answer["labels"] == [str(prediction["label"]) for prediction in served]
    for standalone, online in zip(answer["probabilities"], served, strict=True):
        assert standalone == pytest.approx({str(k): v for k, v in online["probabilities"].items()}, abs=1e-9)


def test_the_runtime_refuses_a_tampered_pipeline_and_predicts_a_csv(alice, platform_model, tmp_path):
    response = _bearer(alice).get(f"/download_model/{platform_model.pk}")
    unpacked = tmp_path / "model"
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(unpacked)
    checksums = json.loads((unpacked / "checksums.json").read_text())
    assert set(checksums) >= {"pipeline.joblib", "schema.json", "README.txt", "deepmed_runtime/__init__.py"}

    rows = patients_frame(5, seed=2).drop(columns=["outcome"])
    rows.to_csv(unpacked / "patients.csv", index=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-m", "deepmed_runtime", "patients.csv"], cwd=unpacked, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    predicted = pd.read_csv(io.StringIO(result.stdout))
    assert len(predicted) == 5 and {"predicted_label", "probability_sick", "probability_well"} <= set(predicted)

    pipeline = unpacked / "pipeline.joblib"
    pipeline.write_bytes(pipeline.read_bytes()[:-1] + b"\0")
    result = subprocess.run(
        [sys.executable, "-m", "deepmed_runtime", "patients.csv"], cwd=unpacked, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "does not match its SHA-256" in result.stderr


def test_the_zip_offers_an_onnx_file_that_gives_the_models_answers(alice, platform_model, tmp_path):
    import numpy as np
    import onnxruntime

    archive = zipfile.ZipFile(io.BytesIO(_bearer(alice).get(f"/download_model/{platform_model.pk}").content))
    assert "model.onnx" in archive.namelist()
    readme = archive.read("README.txt").decode()
    assert "model.onnx is this model translated to ONNX" in readme
    assert f"onnxruntime=={metadata.version('onnxruntime')}" in readme

    rows = patients_frame(30, seed=8).drop(columns=["outcome"])
    rows.loc[0, "bmi"] = None
    records = json.loads(rows.to_json(orient="records"))
    session = onnxruntime.InferenceSession(archive.read("model.onnx"), providers=["CPUExecutionProvider"])
    feed = {
        "age": rows[["age"]].to_numpy(np.float32),
        "bmi": rows[["bmi"]].to_numpy(np.float32),
        "smoker": rows[["smoker"]].astype(str).to_numpy(object),
    }
    labels, probabilities = session.run(None, feed)
    served = (
        _bearer(alice)
        .post("/api/predict_tabular", {"model_id": platform_model.pk, "rows": records}, format="json")
        .json()["predictions"]
    )
    classes = list(json.loads(archive.read("schema.json"))["class_labels"])
    for row, prediction in enumerate(served):
        expected = [prediction["probabilities"][label] for label in classes]
        assert probabilities[row] == pytest.approx(expected, abs=1e-3)
    assert [str(label) for label in labels] == [str(prediction["label"]) for prediction in served]


def test_an_svm_gets_no_onnx_file_and_the_readme_says_why(alice, platform_model):
    svm = TrainingModel.objects.get(run=platform_model.run, model_name="svm")
    archive = zipfile.ZipFile(io.BytesIO(_bearer(alice).get(f"/download_model/{svm.pk}").content))
    assert "model.onnx" not in archive.namelist()
    readme = archive.read("README.txt").decode()
    assert "No ONNX file is included" in readme
    assert "scores come from decision_function" in readme
    assert "deepmed_runtime/__init__.py" in archive.namelist(), "the SVM still ships with its runtime"
