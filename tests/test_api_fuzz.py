"""schemathesis, in-process against the WSGI app, on a handful of fast operations: no 5xx, and what each answers
matches what /api/schema/ documents (status code, content type, body). The whole-API run with gunicorn is
benchmarks/api_fuzz.py; this keeps the operations it once found broken from breaking again, in every `make test`.

It drives schemathesis's own engine (what `schemathesis run` uses: examples, coverage and fuzzing phases), since
the coverage phase's boundary and wrong-type values are what found the 500s; plain `@given` cases rarely do.
"""

import pytest
import schemathesis
import schemathesis.engine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.engine import Status, events

from deepmed.wsgi import application

# Each cheap to answer, and each once wrong: a 500, or an answer the schema did not describe.
OPERATIONS = [
    "POST /api/predict_tabular",
    "POST /api/v1/imaging/pipeline/validate",
    "GET /api/v1/datasets/",
    "GET /api/v1/datasets/{id}/",
    "POST /chat/start",
    "POST /chat/end",
    "GET /chat/history",
    "GET /check_downloads_dir",
    "GET /api/v1/me/",
]
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance"]


@pytest.fixture
def in_process_requests():
    """Django closes the database connection when a request finishes; in-process, that is the test's own
    (Django's test client unhooks the same signal handler for the same reason)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def alice_token(alice):
    """alice's bearer token, and a dataset of hers (id 1 on a fresh table, which generated ids often hit)."""
    from tabular.services import dataset_create

    table = "age,smoker,outcome\n" + "".join(f"{40 + i},{'yes' if i % 3 else 'no'},{i % 2}\n" for i in range(20))
    upload = SimpleUploadedFile("patients.csv", table.encode(), content_type="text/csv")
    dataset_create(user=alice, uploaded_file=upload)
    return str(RefreshToken.for_user(alice).access_token)


def _fuzz(*, token: str, max_examples: int) -> tuple[dict[str, set[int]], list[str], list[str]]:
    """schemathesis's engine on OPERATIONS: the statuses each answered, the 5xx answers, the other failed checks."""
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"jwtAuth": {"bearer": token}}},
            "seed": 20260101,  # the same cases every run: a failure here is a regression, not bad luck
            "workers": 1,
            "cache": {"enabled": False},  # no crash cache (.schemathesis/) left in the checkout
            "generation": {"max-examples": max_examples, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {name: {"enabled": name in CHECKS} for name in schemathesis.checks.CHECKS.get_all_names()},
        }
    )
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=config)
    schema = schema.include(name=OPERATIONS)
    statuses: dict[str, set[int]] = {}
    server_errors, failures = [], []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise AssertionError(f"schemathesis could not run: {event.exception!r}")
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        for interaction in recorder.interactions.values():
            response, request = interaction.response, interaction.request
            if response is not None:
                statuses.setdefault(recorder.label, set()).add(response.status_code)
            if response is not None and response.status_code >= 500:
                server_errors.append(f"{request.method} {request.uri} {request.body!r:.200} -> {response.status_code}")
        for checks in recorder.checks.values():
            failures += [
                f"{recorder.label}: {check.failure_info.failure.title}: {check.failure_info.failure.message:.300}"
                for check in checks
                if check.status == Status.FAILURE and check.failure_info is not None
            ]
    return statuses, server_errors, sorted(set(failures))


# transactional_db: the engine calls the app from its own thread, on its own connection, which sees only committed
# rows (alice and her dataset).
def test_fast_operations_never_answer_5xx_and_answer_as_documented(
    transactional_db, in_process_requests, alice_token, settings
):
    # The chat endpoints' own throttle (30/min) would answer most of the run with 429.
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "chat": "100000/min"}}

    statuses, server_errors, failures = _fuzz(token=alice_token, max_examples=8)

    assert server_errors == []
    assert failures == []
    # Every operation really ran as alice and got past authentication, throttling and method/media-type probes to
    # its own handling (alice is not staff: /check_downloads_dir only refuses her).
    assert set(statuses) == set(OPERATIONS)
    handled = {label: codes - {401, 403, 405, 406, 415, 429} for label, codes in statuses.items()}
    assert [label for label, codes in handled.items() if not codes] == ["GET /check_downloads_dir"], statuses
    assert 200 in statuses["GET /api/v1/datasets/"] and 200 in statuses["POST /chat/start"], statuses


def test_every_fuzzed_operation_is_still_in_the_schema(db, in_process_requests):
    """A renamed route would silently drop out of the test above; this says which one."""
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert set(OPERATIONS) - labels == set()


def test_the_schema_documents_the_refusals_every_operation_can_give(client, db):
    """401 without a token, 400 for an unreadable body, 429 when throttled, 403 where staff only: all answered by
    the app (schemathesis flagged each as undocumented), so all listed in the contract."""
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]

    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "429" in codes, (method, path)
            if {} not in operation.get("security", [{}]):
                assert "401" in codes, (method, path)
            if "requestBody" in operation:
                assert "400" in codes, (method, path)
    assert "401" not in paths["/service_status"]["get"]["responses"]  # open to anyone: no 401 to document
    for path, method in [
        ("/check_downloads_dir", "get"),
        ("/api/v1/knowledge/documents/{document_id}/", "get"),
        ("/api/v1/knowledge/documents/{document_id}/", "delete"),
    ]:
        assert paths[path][method]["responses"]["403"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
