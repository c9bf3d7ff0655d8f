"""Production must have a real way to send mail (issue 11 #10): the console default printed password-reset links
into the logs.

With DEBUG=0 and neither EMAIL_URL nor an explicit EMAIL_BACKEND, settings choose `UnconfiguredEmailBackend`. Every
way of starting the platform refuses with `MISSING_MAIL_MESSAGE` naming EMAIL_URL: the WSGI and ASGI applications
(gunicorn), Celery workers and beat, and Django's system checks (runserver, migrate, check --deploy). Importing the
settings alone still works, so tooling that only reads the URLconf (route checks, schema export) is not stopped.
Should anything send mail regardless, the backend raises instead of printing the message.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend

UNCONFIGURED = "deepmed.mail.UnconfiguredEmailBackend"
MISSING_MAIL_MESSAGE = (
    "EMAIL_URL is required when DEBUG=0 (e.g. smtp+tls://user:password@smtp.example.org:587), so that "
    "confirmation and password-reset e-mails reach people instead of the logs. To keep mail on this machine on "
    "purpose, set EMAIL_BACKEND to django.core.mail.backends.filebased.EmailBackend (or the console backend) instead."
)


class UnconfiguredEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ImproperlyConfigured(MISSING_MAIL_MESSAGE)


def refuse_unconfigured_mail() -> None:
    """Raise ImproperlyConfigured when production has no mail backend; called wherever the platform starts."""
    if settings.EMAIL_BACKEND == UNCONFIGURED:
        raise ImproperlyConfigured(MISSING_MAIL_MESSAGE)


@checks.register(checks.Tags.security, deploy=False)
def mail_backend_check(app_configs, **kwargs):
    if settings.EMAIL_BACKEND == UNCONFIGURED:
        return [checks.Error(MISSING_MAIL_MESSAGE, id="deepmed.E010")]
    return []
