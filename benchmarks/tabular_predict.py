"""Prediction latency of POST /api/predict_tabular vs in-process `pipeline.predict_proba` on the same rows.

For each model (logistic regression: exact linear explanations; random forest: occlusion explanations) it times,
through the API test client (the full Django/DRF stack, no network): one row with its explanation (p50/p99 over
`--repeats` calls), 1,000 rows with explanations, 10,000 rows as JSON (explanations are skipped above 1,000 rows),
and 10,000 rows as a CSV upload; the baseline is `predict_proba` of the loaded pipeline on the same validated rows.

Uses a throwaway SQLite database and MEDIA_ROOT in a temporary folder; nothing is left behind.
Usage: .venv/bin/python benchmarks/tabular_predict.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="deepmed-predict-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'db.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["VAR_DIR"] = str(workdir / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed.test_settings")
    import django

    django.setup()
    import pandas as pd
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from tabular.bundles import model_bundle_load
    from tabular.ml.schema import validate_rows
    from tabular.tests.factories_models import patients_frame, trained_models

    settings.MEDIA_ROOT = Path(os.environ["MEDIA_ROOT"])
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(email="bench@example.org", password="bench-password-1")
    client = APIClient()
    client.force_authenticate(user)
    models = trained_models(user, models=("logistic_regression", "random_forest"), n_rows=150)
    one = patients_frame(1, seed=1).drop(columns=["outcome"]).to_dict(orient="records")
    thousand = patients_frame(1000, seed=2).drop(columns=["outcome"])
    big = patients_frame(10_000, seed=3).drop(columns=["outcome"])
    big_records = big.to_dict(orient="records")
    big_csv = big.to_csv(index=False).encode()

    def post_json(model_id, rows):
        response = client.post("/api/predict_tabular", {"model_id": model_id, "rows": rows}, format="json")
        assert response.status_code == 200, response.content[:300]

    def post_csv(model_id):
        upload = io.BytesIO(big_csv)
        upload.name = "batch.csv"
        response = client.post("/api/predict_tabular", {"model_id": model_id, "file": upload}, format="multipart")
        assert response.status_code == 200, response.content[:300]

    print(f"{'model':22} {'case':38} {'p50 ms':>9} {'p99 ms':>9} {'rows/s':>10}")
    for model in models:
        bundle = model_bundle_load(model)
        pipeline = bundle["pipeline"]
        clean_one, _ = validate_rows(bundle["schema"], pd.DataFrame(one))
        clean_big, _ = validate_rows(bundle["schema"], big)
        post_json(model.pk, one)  # warm the caches (imports, first query) outside the figures
        cases = [
            ("API, 1 row + explanation", lambda m=model: post_json(m.pk, one), 1, args.repeats),
            ("in-process predict_proba, 1 row", lambda p=pipeline, x=clean_one: p.predict_proba(x), 1, args.repeats),
            (
                "API, 1,000 rows + explanations",
                lambda m=model: post_json(m.pk, thousand.to_dict(orient="records")),
                1000,
                3,
            ),
            ("API, 10,000 rows JSON (no expl.)", lambda m=model: post_json(m.pk, big_records), 10_000, 3),
            ("API, 10,000 rows CSV upload", lambda m=model: post_csv(m.pk), 10_000, 3),
            ("in-process predict_proba, 10,000", lambda p=pipeline, x=clean_big: p.predict_proba(x), 10_000, 3),
        ]
        for label, call, n_rows, repeats in cases:
            times = _timed(call, repeats)
            p50, p99 = statistics.median(times), _percentile(times, 0.99)
            print(f"{model.model_name:22} {label:38} {p50 * 1000:9.1f} {p99 * 1000:9.1f} {n_rows / p50:10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
