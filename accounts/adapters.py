"""allauth adapter: lets django-axes speak first on the web login."""

from allauth.account.adapter import DefaultAccountAdapter
from axes.handlers.proxy import AxesProxyHandler


class AccountAdapter(DefaultAccountAdapter):
    def pre_authenticate(self, request, **credentials):
        # allauth's own failed-login limiter runs before authenticate() and would answer a locked account with
        # a vague form error; checking axes first shows the plain "locked for 30 minutes" page instead.
        if not AxesProxyHandler.is_allowed(request, credentials):
            request.axes_locked_out = True
            request.axes_credentials = credentials
            raise self.validation_error("too_many_login_attempts")
        super().pre_authenticate(request, **credentials)
