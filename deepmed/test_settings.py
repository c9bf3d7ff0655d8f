"""Test settings: the real settings with eager Celery, a fast hasher and a throwaway MEDIA_ROOT."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")  # noqa: S105
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="deepmed-test-var-"))
os.environ.setdefault("CACHE_URL", "locmemcache://")
# Production settings refuse to start without a mail server unless a backend is chosen explicitly (also inherited
# by the Celery worker processes the tests start).
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from .settings import *  # noqa: E402, F403
from .settings import DATABASES, STORAGES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the real Celery worker of tests/test_celery_worker.py opens the same test database.
    # One file per xdist worker, since they share VAR_DIR.
    _xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(Path(VAR_DIR) / f"test-{_xdist_worker}.sqlite3")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = tempfile.mkdtemp(prefix="deepmed-test-media-")
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
