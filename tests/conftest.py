"""Fixtures for the cross-app tests."""

import pytest

from .celery_harness import use_broker_folders


@pytest.fixture
def broker_folders(tmp_path):
    """Filesystem broker folders of this test's own, shared with the worker it starts (tests/celery_harness.py)."""
    with use_broker_folders(tmp_path) as root:
        yield root
