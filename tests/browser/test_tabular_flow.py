"""What a clinician does with a messy hospital export in a real browser: upload it (semicolons, Latin-1 accents,
"N/A"), read the profile and its flags, change one column of the cleaning plan, apply it and read the report."""

import re

import pytest

from tests.browser.waiting import wait_for_js

pytestmark = pytest.mark.browser

EMAIL = "rita.registrar@example.org"
PASSWORD = "a-long-ward-password-2024"  # noqa: S105
FIRST = ["Zoé", "André", "Jürgen", "Inés", "Noël", "Maëlle", "Søren", "Éloïse", "Ana", "Björn"]
LAST = ["Müller", "Lefèvre", "Groß", "Peña", "Dubois", "Ørsted", "Nowak", "García", "Håkansson", "Nuñez"]


def messy_export() -> bytes:
    lines = ["patient_name;mrn;age;glucose;ward;outcome"]
    for index in range(60):
        glucose = "N/A" if index % 7 == 0 else f"{4.5 + (index % 9) * 0.3:.1f}".replace(".", ",")
        age = "-" if index % 11 == 0 else str(35 + (index * 5) % 50)
        ward = ["Cardiología", "Neurología", "Oncología"][index % 3]
        outcome = "yes" if index % 4 == 0 else "no"
        name = f"{FIRST[index % 10]} {LAST[(index * 3) % 10]}"
        lines.append(f"{name};MRN{700000 + index * 13};{age};{glucose};{ward};{outcome}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


@pytest.fixture
def clinician(django_user_model):
    from allauth.account.models import EmailAddress

    user = django_user_model.objects.create_user(email=EMAIL, password=PASSWORD, first_name="Rita")
    EmailAddress.objects.create(user=user, email=EMAIL, verified=True, primary=True)
    return user


def test_upload_profile_edit_plan_apply_and_read_the_report(page, page_problems, clinician):
    page.goto("/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Data").click()
    page.get_by_role("button", name="Upload a dataset").first.click()
    page.wait_for_url("**/upload")
    page.get_by_label("Data file").set_input_files(
        {"name": "export ward 3.csv", "mimeType": "text/csv", "buffer": messy_export()}
    )
    page.get_by_label("Dataset name").fill("Ward 3 export")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r".*/datasets/\d+$"))
    page.get_by_role("heading", name="Ward 3 export").wait_for()
    assert "60 rows × 6 columns" in page.locator("main").inner_text()
    assert "Cardiología" in page.locator("table").inner_text()  # Latin-1 read correctly

    page.locator("main").get_by_role("button", name="Profile").click()
    page.get_by_label("Outcome column", exact=True).select_option("outcome")
    page.get_by_role("button", name="Show class balance").click()
    page.get_by_role("heading", name="Outcome “outcome”").wait_for()
    flags = page.locator("ul.flag-list")
    assert flags.locator('li[data-column="patient_name"] [data-flag="personal_data"]').is_visible()
    assert flags.locator('li[data-column="mrn"] [data-flag="identifier"]').is_visible()
    wait_for_js(page, "document.querySelectorAll('canvas[data-histogram]').length > 0")

    page.get_by_role("link", name="Ward 3 export").click()
    page.get_by_label("Outcome column", exact=True).select_option("outcome")
    page.get_by_role("button", name="Make a cleaning plan").click()
    page.get_by_role("heading", name="Cleaning plan for “outcome”").wait_for()
    assert page.get_by_label("Action for patient_name").input_value() == "drop"
    page.get_by_label("Action for ward").select_option("drop")
    page.get_by_role("button", name="Save and apply").click()

    page.get_by_role("heading", name="Cleaning report for “outcome”").wait_for()
    report = page.locator("main").inner_text()
    assert "ward" in report and "patient_name" in report
    assert int(page.get_by_test_id("imputed-total").inner_text()) > 0

    assert page_problems.console_errors == [] and page_problems.page_errors == []
    assert page_problems.external_requests == []
    assert page_problems.csp_violations(page) == []
