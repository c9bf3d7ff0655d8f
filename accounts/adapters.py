"""allauth adapter: django-axes speaks first on the web login, and emails are signed as DeepMed."""

from types import SimpleNamespace
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings

from deepmed.client_ip import client_ip

from .models import email_normalise
from .services import email_send_later

PLATFORM_NAME = "DeepMed"


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request):
        # The platform's one rule (TRUSTED_PROXY_COUNT), so allauth's limits key on the same address as axes,
        # django-ratelimit and DRF, and fall back to REMOTE_ADDR the same way.
        return client_ip(request) or super().get_client_ip(request)

    def pre_authenticate(self, request, **credentials):
        # allauth's own failed-login limiter runs before authenticate() and would answer a locked account with
        # a vague form error; checking axes first shows the plain "locked for 30 minutes" page instead.
        if not AxesProxyHandler.is_allowed(request, credentials):
            request.axes_locked_out = True
            request.axes_credentials = credentials
            raise self.validation_error("too_many_login_attempts")
        super().pre_authenticate(request, **credentials)

    def clean_email(self, email: str) -> str:
        # Registration, password reset and address changes store and look up the one normal form.
        return email_normalise(super().clean_email(email))

    def format_email_subject(self, subject: str) -> str:
        return f"[{PLATFORM_NAME}] {subject}"

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render here (the templates need the request), send from a Celery job (accounts.services)."""
        # The sites framework's default row says "example.com"; emails should name the platform and its address.
        request = allauth_context.request
        domain = request.get_host() if request is not None else urlsplit(settings.SITE_URL).netloc
        current_site = SimpleNamespace(name=PLATFORM_NAME, domain=domain)
        context = {"request": request, "email": email, "current_site": current_site, **context}
        email_send_later(message=self.render_mail(template_prefix, email, context))
