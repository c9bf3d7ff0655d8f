"""Issue 11 #12: wide CSVs (genomics width) upload and profile.

The delimiter sniffer read a fixed 64 KB sample; a 4,001-column header of 96 KB was cut in two, the header seemed
narrower than every row, and the upload was refused with "31 of 30 rows have a different number of fields". The
sample now ends on whole lines.
"""

import io

import numpy as np
import pytest

URL = "/api/v1/datasets/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api(api_client, alice):
    api_client.force_authenticate(alice)
    return api_client


def wide_csv(n_columns: int, n_rows: int = 30, *, name_width: int = 24, delimiter: str = ",") -> bytes:
    """`n_columns - 1` numeric features with long names (as expression tables have) and a binary outcome."""
    rng = np.random.default_rng(0)
    names = [f"expression_{index:0{name_width - 11}d}" for index in range(1, n_columns)] + ["outcome"]
    values = np.round(rng.normal(5, 2, (n_rows, n_columns - 1)), 2)
    lines = [delimiter.join(names)]
    for index, row in enumerate(values):
        lines.append(delimiter.join(map(str, row)) + delimiter + ("sick" if index % 3 == 0 else "well"))
    return ("\n".join(lines) + "\n").encode()


def upload(client, content: bytes, name: str):
    return client.post(URL, {"file": io.BytesIO(content), "name": name}, format="multipart")


def test_a_4001_column_csv_with_a_96_kb_header_uploads(alice_api):
    content = wide_csv(4001)
    header = content.split(b"\n", 1)[0]
    assert len(header) > 96_000, "the header alone is longer than the old 64 KB sample"

    response = upload(alice_api, content, "wide.csv")

    assert response.status_code == 201, response.content[:500]
    body = response.json()
    assert (body["n_rows"], body["n_columns"]) == (30, 4001)
    assert body["columns"][-1]["name"] == "outcome"


def test_a_wide_semicolon_file_gets_its_delimiter_from_whole_lines(alice_api):
    response = upload(alice_api, wide_csv(4001, delimiter=";"), "wide-semicolon.csv")

    assert response.status_code == 201, response.content[:500]
    assert response.json()["n_columns"] == 4001


def test_a_10000_column_table_uploads_and_profiles(alice_api):
    response = upload(alice_api, wide_csv(10_000, n_rows=40), "genomics.csv")
    assert response.status_code == 201, response.content[:500]
    dataset_id = response.json()["id"]

    profile = alice_api.get(f"{URL}{dataset_id}/profile/")

    assert profile.status_code == 200, profile.content[:500]
    body = profile.json()
    assert (body["n_rows"], body["n_columns"]) == (40, 10_000)
    kinds = {column["name"]: column["kind"] for column in body["columns"]}
    assert kinds["expression_0000000000001"] == "numeric"
    assert kinds["outcome"] in ("categorical", "boolean")


def test_a_header_only_wide_file_is_still_called_header_only(alice_api):
    header_only = wide_csv(5000).split(b"\n", 1)[0] + b"\n"

    response = upload(alice_api, header_only, "empty.csv")

    assert response.status_code == 400
    assert response.json()["code"] == "header_only"
