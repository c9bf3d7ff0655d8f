"""Two-factor enforcement for session logins, and MFA as a precondition of the admin for staff."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.messages.storage import default_storage
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse

from deepmed.middleware import wants_json

from .mfa import user_has_confirmed_mfa
from .permissions import STAFF_MFA_MESSAGE, StaffAccess, staff_access

OTP_REQUIRED_DETAIL = "Enter your two-factor code to finish logging in before using this page."


def _redirect_with_message(request, url: str, text: str) -> HttpResponseRedirect:
    # This middleware runs before MessageMiddleware has attached its storage, so write the message directly.
    storage = default_storage(request)
    storage.add(messages.WARNING, text)
    response = HttpResponseRedirect(url)
    storage.update(response)
    return response


class MFAEnforcementMiddleware:
    """Keeps a password-only session away from everything but the OTP step when the user has two-factor on.

    Runs after django_otp's OTPMiddleware (which adds `request.user.is_verified()`) and judges a request by its
    session alone, whatever headers it carries: plain Django views (the admin, /profile/mfa/disable) never read
    `Authorization`, so a Bearer header proves nothing to them. A request with only a Bearer token has no session
    user here (JWT is not a Django authentication backend, so `request.user` is anonymous) and passes; DRF's JWT
    authentication then refuses a token issued without a code for a user who has an authenticator app.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self._enforce(request)
        if response is not None:
            return response
        return self.get_response(request)

    def _is_exempt(self, path: str) -> bool:
        exempt = (
            reverse("mfa_verify"),
            reverse("account_logout"),
            "/accounts/logout/",
            reverse("admin:logout"),
            settings.STATIC_URL,
            "/favicon.ico",
        )
        return path.startswith(exempt)

    def _enforce(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        path = request.path_info
        if self._is_exempt(path) or user.is_verified():
            return None
        has_mfa = user_has_confirmed_mfa(user)
        if has_mfa:
            if wants_json(request):
                return JsonResponse({"detail": OTP_REQUIRED_DETAIL, "code": "otp_required"}, status=401)
            query = urlencode({"next": request.get_full_path()}) if request.method == "GET" else ""
            return HttpResponseRedirect(reverse("mfa_verify") + (f"?{query}" if query else ""))
        # The admin is a staff page like the others (accounts.permissions), checked here for all its views at once.
        if path.startswith(reverse("admin:index")) and staff_access(request) is StaffAccess.SECOND_FACTOR_MISSING:
            return _redirect_with_message(request, reverse("mfa_setup"), STAFF_MFA_MESSAGE)
        return None
