"""S3 for Django's default file storage is switched on by AWS_STORAGE_BUCKET_NAME alone.

Each case imports deepmed.settings in a fresh interpreter with exactly the environment given (the module reads
os.environ once), then builds the real storage object from the resulting settings.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.core.files.storage import storages
storage = storages["default"]
print(json.dumps({
    "backend": settings.STORAGES["default"]["BACKEND"],
    "class": type(storage).__module__ + "." + type(storage).__name__,
    "bucket": getattr(storage, "bucket_name", None),
    "region": getattr(storage, "region_name", None),
    "endpoint": getattr(storage, "endpoint_url", None),
    "acl": getattr(storage, "default_acl", "absent"),
    "querystring_auth": getattr(storage, "querystring_auth", None),
    "file_overwrite": getattr(storage, "file_overwrite", None),
    "signed_url": storage.url("1/report.pdf") if hasattr(storage, "bucket_name") else None,
    "static": settings.STORAGES["staticfiles"]["BACKEND"],
}))
"""


def storage_with(tmp_path, **env):
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "deepmed.settings",
        # boto3 signs URLs locally; throwaway credentials keep it from looking for real ones.
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_media_stays_on_the_filesystem_without_a_bucket(tmp_path):
    loaded = storage_with(tmp_path)

    assert loaded["backend"] == "django.core.files.storage.FileSystemStorage"
    assert loaded["class"].endswith("FileSystemStorage")


def test_an_empty_bucket_name_keeps_the_filesystem(tmp_path):
    """A Kubernetes ConfigMap or .env line left empty must not switch to S3 with no bucket."""
    loaded = storage_with(tmp_path, AWS_STORAGE_BUCKET_NAME="  ", AWS_S3_REGION_NAME="")

    assert loaded["backend"] == "django.core.files.storage.FileSystemStorage"


def test_a_bucket_name_switches_default_storage_to_private_s3(tmp_path):
    loaded = storage_with(
        tmp_path,
        AWS_STORAGE_BUCKET_NAME="deepmed-media",
        AWS_S3_REGION_NAME="eu-central-1",
        AWS_S3_ENDPOINT_URL="https://minio.hospital.local:9000",
    )

    assert loaded["backend"] == "storages.backends.s3.S3Storage"
    assert loaded["class"] == "storages.backends.s3.S3Storage"
    assert (loaded["bucket"], loaded["region"], loaded["endpoint"]) == (
        "deepmed-media",
        "eu-central-1",
        "https://minio.hospital.local:9000",
    )
    assert loaded["acl"] is None
    assert loaded["querystring_auth"] is True
    assert loaded["file_overwrite"] is False
    # Objects are private: a URL is a signed, expiring link to the configured endpoint, never a public one.
    url = loaded["signed_url"]
    assert url.startswith("https://minio.hospital.local:9000/deepmed-media/1/report.pdf?")
    assert "X-Amz-Signature=" in url or "Signature=" in url
    # Static files are untouched: WhiteNoise (or the dev server) still serves them.
    assert loaded["static"] != "storages.backends.s3.S3Storage"


def test_without_region_or_endpoint_boto3_defaults_apply(tmp_path):
    loaded = storage_with(tmp_path, AWS_STORAGE_BUCKET_NAME="deepmed-media")

    assert loaded["class"] == "storages.backends.s3.S3Storage"
    assert loaded["region"] is None
    assert loaded["endpoint"] is None
