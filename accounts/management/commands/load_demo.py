"""`manage.py load_demo`: the demo user (and, as features land, sample data) that `make run` starts with.

Safe to run again and again: it creates what is missing, repairs what drifted, and prints the same login.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.management.base import BaseCommand
from django.db import transaction

LOGIN_FILE_NAME = "demo-login.txt"


def demo_login_file() -> Path:
    return Path(settings.VAR_DIR) / LOGIN_FILE_NAME


def _read_login_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _write_login_file(path: Path, *, email: str, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start, so the password is never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"email: {email}\npassword: {password}\n")
    path.chmod(0o600)


@transaction.atomic
def demo_user_ensure(*, email: str, login_file: Path):
    """The demo user with a verified primary address and the password stored in `login_file`.

    The password is random on first creation and kept in the file, so a re-run prints the same login; if the
    file is lost, a new password is made and stored; if the database was reset, the stored one is set again.
    """
    from allauth.account.models import EmailAddress

    email = email.strip().lower()
    stored = _read_login_file(login_file)
    password = stored.get("password") if stored.get("email") == email else None

    user, created = get_user_model().objects.get_or_create(email=email, defaults={"first_name": "Demo"})
    if password is None:
        password = secrets.token_urlsafe(12)
        validate_password(password, user=user)
    if created or not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    EmailAddress.objects.filter(user=user).exclude(email__iexact=email).update(primary=False)
    EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    if stored != {"email": email, "password": password}:
        _write_login_file(login_file, email=email, password=password)
    return user, password, created


class Command(BaseCommand):
    help = "Create or repair the demo user and print its login (stored in var/demo-login.txt)."

    def handle(self, *args, **options):
        login_file = demo_login_file()
        user, password, created = demo_user_ensure(email=settings.DEMO_USER_EMAIL, login_file=login_file)
        state = "created" if created else "ready"
        self.stdout.write(f"Demo user {state}. Log in with  {user.email}  /  {password}   (kept in {login_file})")
        from tabular.demo import demo_dataset_ensure

        dataset, dataset_created = demo_dataset_ensure(user=user)
        self.stdout.write(f"Sample dataset {'created' if dataset_created else 'ready'}: {dataset.name}")
