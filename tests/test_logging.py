"""Logs: one access line per request carrying its request id; LOG_FORMAT=json gives one JSON object per line."""

import copy
import io
import json
import logging
import logging.config
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def captured_logs(formatter: str):
    """The project's own LOGGING config, with the console handler writing into a buffer with `formatter`."""
    buffer = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"].update(formatter=formatter, stream=buffer)
    logging.config.dictConfig(config)
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


def access_lines(output: str, path: str) -> list[str]:
    return [line for line in output.splitlines() if "deepmed.access" in line and f" {path} " in line]


def test_each_request_logs_one_access_line_with_its_request_id(client):
    with captured_logs("text") as buffer:
        first = client.get("/privacy")
        second = client.get("/terms")

    first_id, second_id = first["X-Request-ID"], second["X-Request-ID"]
    assert first_id != second_id
    privacy_lines = access_lines(buffer.getvalue(), "/privacy")
    terms_lines = access_lines(buffer.getvalue(), "/terms")
    assert len(privacy_lines) == 1
    assert len(terms_lines) == 1
    assert f"[{first_id}]" in privacy_lines[0]
    assert "GET /privacy 200" in privacy_lines[0]
    assert f"[{second_id}]" in terms_lines[0]


def test_a_well_formed_incoming_request_id_is_kept(client):
    with captured_logs("text") as buffer:
        response = client.get("/privacy", HTTP_X_REQUEST_ID="lb-7f3a9c2e11")

    assert response["X-Request-ID"] == "lb-7f3a9c2e11"
    assert "[lb-7f3a9c2e11]" in access_lines(buffer.getvalue(), "/privacy")[0]


def test_a_malformed_incoming_request_id_is_replaced(client):
    """A client must not be able to write arbitrary text (newlines, fake fields) into our logs."""
    with captured_logs("text") as buffer:
        response = client.get("/privacy", HTTP_X_REQUEST_ID="x\nFAKE LOG LINE")

    assert "FAKE LOG LINE" not in buffer.getvalue()
    assert response["X-Request-ID"] != "x\nFAKE LOG LINE"
    assert len(response["X-Request-ID"]) >= 8


def test_json_format_gives_parseable_lines_with_request_id_and_status(client):
    with captured_logs("json") as buffer:
        response = client.get("/privacy")

    records = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    access = [record for record in records if record["logger"] == "deepmed.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == response["X-Request-ID"]
    assert access[0]["status"] == 200
    assert access[0]["path"] == "/privacy"
    assert access[0]["level"] == "INFO"


def test_log_format_json_from_the_environment_logs_json_without_the_request_body(tmp_path):
    """End to end in a fresh process: LOG_FORMAT=json as an operator sets it, a POST carrying a secret."""
    script = """
import django
django.setup()
from django.test import Client
response = Client().post("/privacy?next=/x", data={"password": "secret-body-marker-1234"})
print("RESPONSE_ID=" + response["X-Request-ID"], flush=True)
"""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "testserver",
        "LOG_FORMAT": "json",
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )

    response_id = result.stdout.split("RESPONSE_ID=")[1].strip()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, not just ours, must be JSON
    access = [record for record in records if record.get("logger") == "deepmed.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == response_id
    assert access[0]["method"] == "POST"
    assert "secret-body-marker-1234" not in result.stderr
