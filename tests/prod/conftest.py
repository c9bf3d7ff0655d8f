"""The production shape for tests/prod: started once per session (scripts/prod_shape.py), always stopped.

These tests run only under `make test-prod` (DEEPMED_PROD_SHAPE=1): they start MariaDB, Redis, PostgreSQL, gunicorn,
nginx and Celery processes of their own, which `make test` must not. With DEEPMED_PROD_SHAPE_ATTACH=1 they use a
shape already started by `scripts/prod_shape.py start` instead (quicker while writing a test; nothing is stopped).
"""

import os
import sys
import time
from pathlib import Path

import pytest
import requests

if os.environ.get("DEEPMED_PROD_SHAPE") != "1":
    collect_ignore_glob = ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from prod_shape import ProdShape  # noqa: E402


@pytest.fixture(scope="session")
def shape():
    if os.environ.get("DEEPMED_PROD_SHAPE_ATTACH") == "1":
        yield ProdShape.attach()
        return
    production = ProdShape()
    production.start()
    try:
        yield production
    finally:
        production.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, add the end of every process's log to the report: the cause is usually in one of them."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "shape" in item.fixturenames:
        production = item.funcargs.get("shape")
        if production is not None:
            report.sections.append(("production shape logs", production.log_tails()))


@pytest.fixture(scope="session")
def clinician(shape):
    """One clinician registered through /register and the e-mailed link, shared by the tests of a session."""
    return shape.register_user()


class FreshToken(requests.auth.AuthBase):
    """Bearer auth with a token renewed before it expires (15 minutes by default; a session here runs longer)."""

    def __init__(self, shape, user, renew_after_s: float = 600):
        self.shape, self.user, self.renew_after_s = shape, user, renew_after_s
        self.token, self.issued = "", 0.0

    def __call__(self, request):
        if not self.token or time.monotonic() - self.issued > self.renew_after_s:
            self.token, self.issued = self.shape.token(self.user), time.monotonic()
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@pytest.fixture(scope="session")
def api(shape, clinician):
    """A requests session signed in as the clinician with JWT, through nginx; `api.base_url` is the site."""
    session = shape.session()
    session.auth = FreshToken(shape, clinician)
    session.base_url = shape.base_url
    return session


def pytest_collection_modifyitems(config, items):
    """The scenario first (the shape is healthy and untouched), then the drills that break it on purpose."""
    items.sort(key=lambda item: 0 if item.path.name == "test_scenario.py" else 1)
