"""Zeros a measurement can never take (cholesterol 0, blood pressure 0, BMI 0) are flagged as missing values coded
as 0, and one click in the cleaning plan reads them as missing — in the report, in training and in serving.
Also: the profile shows no outliers on yes/no columns, and the outcome's class balance with counts and shares."""

import re

import numpy as np
import pytest
from django.test import Client

from tabular import services, training
from tabular.ml import cleaning, profiling

from .conftest import upload_file
from .test_pages_readable import clinical_frame

N_ZEROS, N_BLANKS = 9, 5  # in clinical_frame's totChol


# --- the profiler (no Django) -----------------------------------------------------------------------------------


def test_zeros_of_a_never_zero_measurement_are_counted_and_explained():
    frame = clinical_frame()
    frame["BMI"] = np.where(np.arange(len(frame)) % 40 == 0, 0.0, 27.5)
    frame["cigsPerDay"] = np.where(np.arange(len(frame)) % 2 == 0, 0, 20)  # non-smokers: a real 0

    profile = profiling.profile_frame(frame)

    chol = profile.column("totChol")
    assert chol.suspect_zeros == N_ZEROS
    assert any("probably a missing value coded as 0" in note and "cholesterol" in note for note in chol.notes)
    assert profile.column("BMI").suspect_zeros == 4
    assert profile.column("cigsPerDay").suspect_zeros == 0
    assert profile.column("sysBP").suspect_zeros == 0  # no zeros at all
    assert profile.column("age").suspect_zeros == 0  # not a never-zero measurement
    assert profile.to_dict()["columns"][4]["suspect_zeros"] == N_ZEROS


@pytest.mark.parametrize(
    ("name", "measurement"),
    [
        ("totChol", "cholesterol"),
        ("sysBP", "blood pressure"),
        ("BloodPressure", "blood pressure"),
        ("BMI", "BMI"),
        ("heartRate", "heart rate"),
        ("glucose", "glucose"),
        ("weight_kg", "weight"),
        ("BPMeds", None),
        ("weight_change", None),
        ("cigsPerDay", None),
        ("age", None),
    ],
)
def test_which_column_names_are_never_zero_measurements(name, measurement):
    assert profiling.measurement_never_zero(name) == measurement


def test_zeros_are_not_suspect_when_they_are_most_values_or_the_column_goes_negative():
    many = np.array([0.0] * 6 + [200.0] * 4)
    negative = np.array([-1.0, 0.0, 5.0, 6.0])
    assert profiling.suspect_zero_count("cholesterol", many) == 0
    assert profiling.suspect_zero_count("cholesterol", negative) == 0


def test_a_yes_no_column_has_no_outliers():
    profile = profiling.profile_frame(clinical_frame())
    diabetes = profile.column("diabetes")
    assert diabetes.kind == "boolean"
    assert diabetes.outliers is None


# --- the cleaning rule (no Django) --------------------------------------------------------------------------------


def _plan(frame, *, zeros: bool):
    profile = profiling.profile_frame(frame, target="TenYearCHD")
    plan = cleaning.plan_cleaning(profile, "TenYearCHD")
    chol = plan.column("totChol")
    assert chol.n_suspect_zeros == N_ZEROS and chol.zeros_as_missing is False
    return cleaning.with_column_changes(plan, {"totChol": {"zeros_as_missing": zeros, "scale": "none"}})


def test_the_rule_makes_the_pipeline_impute_zeros_with_the_median_of_real_values():
    frame = clinical_frame()
    features = frame.drop(columns="TenYearCHD")
    preprocessor = cleaning.build_preprocessor(_plan(frame, zeros=True)).fit(features)
    patient = features.iloc[[0]].assign(totChol=0.0)

    imputed = preprocessor.transform(patient)["totChol"].iloc[0]

    real = frame.totChol[(frame.totChol != 0) & frame.totChol.notna()]
    assert imputed == pytest.approx(real.median())
    without_rule = cleaning.build_preprocessor(_plan(frame, zeros=False)).fit(features)
    assert without_rule.transform(patient)["totChol"].iloc[0] == 0.0


def test_the_cleaning_report_counts_zeros_read_as_missing_among_the_imputed_cells():
    frame = clinical_frame()
    with_rule = cleaning.cleaning_report(frame, _plan(frame, zeros=True))
    without_rule = cleaning.cleaning_report(frame, _plan(frame, zeros=False))

    chol = next(column for column in with_rule["columns"] if column["name"] == "totChol")
    assert chol["n_imputed"] == N_BLANKS + N_ZEROS and chol["n_zeros_as_missing"] == N_ZEROS
    assert next(c for c in without_rule["columns"] if c["name"] == "totChol")["n_imputed"] == N_BLANKS


def test_the_rule_is_refused_on_a_category_and_read_from_form_text():
    plan = cleaning.CleaningPlan.from_dict(
        {
            "target": "y",
            "columns": [
                {"name": "chol", "zeros_as_missing": "true"},
                {"name": "sex", "kind": "categorical", "encode": "onehot", "impute": "most_frequent"},
            ],
        }
    )
    assert plan.column("chol").zeros_as_missing is True
    with pytest.raises(cleaning.PlanError, match="numeric measurements only"):
        cleaning.with_column_changes(plan, {"sex": {"zeros_as_missing": True}})


# --- the pages ----------------------------------------------------------------------------------------------------


@pytest.fixture
def framingham(alice):
    return services.dataset_create(
        user=alice, uploaded_file=upload_file(clinical_frame().to_csv(index=False).encode(), "framingham.csv")
    )


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


@pytest.mark.django_db
def test_the_profile_flags_the_zeros_and_shows_class_balance_without_yes_no_outliers(alice, framingham):
    response = _client(alice).get(f"/datasets/{framingham.pk}/profile?target=TenYearCHD")
    html = response.content.decode()
    text = _text(response)

    assert f"{N_ZEROS} zeros: probably a missing value coded as 0 (cholesterol" in text
    zero_section = re.search(r'<section[^>]*id="suspect-zeros".*?</section>', html, re.DOTALL).group(0)
    assert 'data-column="totChol"' in zero_section and 'data-column="sysBP"' not in zero_section
    diabetes_row = re.search(r'<th scope="row">diabetes</th>.*?</tr>', html, re.DOTALL).group(0)
    assert "outlier" not in diabetes_row.lower() and "usual range" not in diabetes_row
    counts = clinical_frame()["TenYearCHD"].value_counts()
    for value, count in counts.items():
        share = f"{count / counts.sum() * 100:.1f}%"
        assert re.search(
            rf"<th scope=\"row\">{value}</th><td class=\"num\">{count}</td><td class=\"num\">{share}", html
        )


def _form_data(html: str) -> dict[str, list[str]]:
    """What a browser sends for the plan form: every select with its selected option."""
    data: dict[str, list[str]] = {}
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.DOTALL):
        selected = re.search(r'<option value="([^"]*)" selected>', body) or re.search(r'<option value="([^"]*)"', body)
        data[name] = [selected.group(1)]
    return data


@pytest.mark.django_db
def test_one_click_in_the_plan_reads_zeros_as_missing_and_changes_the_cleaning(alice, framingham):
    client = _client(alice)
    plan = services.cleaning_plan_create(user=alice, dataset=framingham, target="TenYearCHD")
    url = f"/datasets/{framingham.pk}/plan/{plan.pk}"
    html = client.get(url).content.decode()
    button = re.search(
        r'<button type="submit"[^>]*name="(col-\d+-zeros_as_missing)" value="true">Treat 0 as missing', html
    )
    assert button, "the totChol row offers the one-click rule"
    assert html.count("Treat 0 as missing") == 1

    data = _form_data(html)
    data[button.group(1)].append("true")  # the clicked button comes after the row's select, as a browser sends it
    assert client.post(url, data).status_code == 302

    plan.refresh_from_db()
    columns = {column["name"]: column for column in plan.plan["columns"]}
    assert columns["totChol"]["zeros_as_missing"] is True
    assert not any(column["zeros_as_missing"] for name, column in columns.items() if name != "totChol")
    assert client.post(f"{url}/apply").status_code == 302
    plan.refresh_from_db()
    chol = next(column for column in plan.report["columns"] if column["name"] == "totChol")
    assert chol["n_imputed"] == N_BLANKS + N_ZEROS
    report_page = _text(client.get(f"{url}/report"))
    assert f"0 read as missing: {N_ZEROS}" in report_page


@pytest.mark.django_db
def test_a_model_trained_with_the_rule_reads_a_zero_as_a_blank(alice, framingham, django_capture_on_commit_callbacks):
    from tabular.bundles import model_bundle_load

    plan = services.cleaning_plan_create(user=alice, dataset=framingham, target="TenYearCHD")
    services.cleaning_plan_update(plan=plan, changes={"columns": [{"name": "totChol", "zeros_as_missing": True}]})
    with django_capture_on_commit_callbacks(execute=True):
        run = training.training_run_start(
            user=alice,
            dataset=framingham,
            target="TenYearCHD",
            cleaning_plan=plan,
            models=["logistic_regression"],
            level=1,
            cv_folds=3,
        )
    run.refresh_from_db()
    assert run.status == run.Status.SUCCEEDED, run.error
    bundle = model_bundle_load(run.models.get())
    patient = clinical_frame().drop(columns="TenYearCHD").iloc[[3]]
    with_zero = bundle["pipeline"].predict_proba(patient.assign(totChol=0.0))
    with_blank = bundle["pipeline"].predict_proba(patient.assign(totChol=np.nan))
    assert with_zero == pytest.approx(with_blank)
    page = _text(_client(alice).get(f"/predict?model_id={run.models.get().pk}"))
    assert "0 counts as not measured." in page
