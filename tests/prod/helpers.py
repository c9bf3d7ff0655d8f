"""What the production-shape tests share: data to upload, polling, and the storage integrity report."""

import io
import time
import zipfile

import numpy as np
from sklearn.datasets import load_breast_cancer

from imaging.ml.synthetic import shape_image

STORAGE_REPORT = (
    "import json; from modelhub.selectors import media_storage_report; print(json.dumps(media_storage_report()))"
)


def breast_cancer_csv(rows: int = 300) -> bytes:
    """A few hundred rows of scikit-learn's breast cancer data, the label in `diagnosis` (malignant/benign)."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.sample(n=rows, random_state=0).reset_index(drop=True)
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    return frame.to_csv(index=False).encode()


def breast_cancer_examples() -> tuple[dict, dict]:
    """A clearly malignant and a clearly benign case (the most extreme worst-area rows), as prediction rows."""
    frame = load_breast_cancer(as_frame=True).frame.sort_values("worst area")
    malignant, benign = frame.iloc[-1], frame.iloc[0]
    assert (malignant["target"], benign["target"]) == (0, 1)
    return (
        {column: float(value) for column, value in malignant.drop("target").items()},
        {column: float(value) for column, value in benign.drop("target").items()},
    )


def shapes_zip(per_class: int = 8, size: int = 32, shapes=("circle", "square"), seed: int = 0) -> bytes:
    """A ZIP of class folders of synthetic PNGs (imaging/ml/synthetic.py), as a clinician's export would be."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for shape in shapes:
            for index in range(per_class):
                png = io.BytesIO()
                shape_image(shape, size, rng).save(png, format="PNG")
                archive.writestr(f"{shape}/{shape}_{index:03d}.png", png.getvalue())
    return buffer.getvalue()


def wait_for_run(api, run_id: int, *, seconds: float, statuses=("succeeded", "failed", "stopped"), until=None) -> dict:
    """Poll /api/v1/training-runs/{id}/ until the run reaches one of `statuses` (or `until(body)` holds)."""
    deadline = time.monotonic() + seconds
    body = {}
    while time.monotonic() < deadline:
        response = api.get(f"{api.base_url}/api/v1/training-runs/{run_id}/", timeout=30)
        if response.status_code == 200:
            body = response.json()
            if body["status"] in statuses or (until is not None and until(body)):
                return body
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not reach {statuses} within {seconds:.0f} s; last seen: {body}")


def storage_report(shape) -> dict:
    """modelhub's integrity report of MEDIA_ROOT (orphan files, rows whose file is missing), run in the shape."""
    return shape.django_json(STORAGE_REPORT)


def assert_storage_consistent(shape) -> dict:
    report = storage_report(shape)
    assert report["missing"]["count"] == 0, f"rows whose file is gone: {report['missing']}"
    assert report["unsafe"]["count"] == 0, f"rows naming paths outside MEDIA_ROOT: {report['unsafe']}"
    assert report["orphans"]["count"] == 0, f"files no row names: {report['orphans']}"
    return report
