"""Staff powers, decided in one place for the admin, the staff pages and the staff endpoints.

With MFA_REQUIRED_FOR_STAFF (the default) a staff member has staff powers only when this request's sign-in
included a second factor: a session that passed the OTP step (django-otp's `is_verified()`), or a JWT that the
token endpoint issued after a code (OTP_CLAIM) while the account still has its authenticator app. Plain Django
views never read the Bearer header, so for them only the session counts.

Staff without one are told how to get one: pages send them to the two-factor set-up with the reason (a 403 page
would leave them at a dead end, and the fix is theirs to make), the JSON API answers 403 `mfa_required`.
"""

import enum
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from .api.authentication import token_has_second_factor
from .mfa import user_has_confirmed_mfa

STAFF_MFA_MESSAGE = (
    "Staff accounts must turn on two-factor login before using staff pages or the admin. Set it up below."
)
STAFF_MFA_API_DETAIL = (
    "Staff endpoints need a second factor. Turn on two-factor login at /profile/mfa/setup, then sign in with the "
    "code: a browser session that passed the code step, or a token from /api/v1/auth/token/ obtained with `otp`."
)

# The OpenAPI description of a staff endpoint's 403.
STAFF_ONLY = "Staff only, signed in with a second factor (`mfa_required` when the second factor is missing)."


class StaffAccess(enum.Enum):
    NOT_STAFF = "not_staff"
    SECOND_FACTOR_MISSING = "second_factor_missing"
    GRANTED = "granted"


def request_second_factor_verified(request) -> bool:
    """True when this request's sign-in included a second factor (see the module docstring)."""
    user = request.user
    # A DRF request authenticated by JWT carries the token in `auth`; a plain Django request has no `auth`.
    token = getattr(request, "auth", None)
    if hasattr(token, "payload"):
        return token_has_second_factor(token) and user_has_confirmed_mfa(user)
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def staff_access(request) -> StaffAccess:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return StaffAccess.NOT_STAFF
    if not settings.MFA_REQUIRED_FOR_STAFF or request_second_factor_verified(request):
        return StaffAccess.GRANTED
    return StaffAccess.SECOND_FACTOR_MISSING


def request_has_staff_powers(request) -> bool:
    """For endpoints open to everyone that show staff more (details, platform totals)."""
    return staff_access(request) is StaffAccess.GRANTED


def second_factor_setup_redirect(request) -> HttpResponseRedirect:
    """Where a staff page sends staff without a second factor: the set-up page, saying why.

    Staff who have an authenticator app but a password-only session never get here: the MFA middleware holds
    such sessions at the OTP step first.
    """
    messages.warning(request, STAFF_MFA_MESSAGE)
    return HttpResponseRedirect(reverse("mfa_setup"))


def staff_page_refusal(request):
    """None when the request has staff powers; otherwise the answer of a staff page (for views that cannot raise
    PermissionDenied to reach the site's 403 page, such as pages served by DRF views)."""
    access = staff_access(request)
    if access is StaffAccess.GRANTED:
        return None
    if access is StaffAccess.SECOND_FACTOR_MISSING:
        return second_factor_setup_redirect(request)
    return render(request, "403.html", {"request_id": getattr(request, "request_id", "")}, status=403)


def staff_required(view):
    """Page decorator: sign in first; not staff, the site's 403 page; staff without a second factor, its set-up."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        access = staff_access(request)
        if access is StaffAccess.NOT_STAFF:
            raise PermissionDenied
        if access is StaffAccess.SECOND_FACTOR_MISSING:
            return second_factor_setup_redirect(request)
        return view(request, *args, **kwargs)

    return wrapper


class IsVerifiedStaff(BasePermission):
    """DRF permission of every staff-only endpoint: staff with a second factor (when MFA_REQUIRED_FOR_STAFF)."""

    def has_permission(self, request, view):
        access = staff_access(request)
        if access is StaffAccess.SECOND_FACTOR_MISSING:
            raise exceptions.PermissionDenied(STAFF_MFA_API_DETAIL, code="mfa_required")
        return access is StaffAccess.GRANTED
