"""Account pages: login (with `/login/<action>`), registration, logout, profile, two-factor set-up and the OTP step.

Login, registration, logout and password reset are allauth's views behind our per-IP rate limits; the logic of
two-factor login lives in accounts/mfa.py.
"""

import functools

import segno
from allauth.account import views as allauth_views
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_static.models import StaticDevice
from django_ratelimit.core import is_ratelimited

from deepmed.middleware import wants_json

from . import mfa
from .forms import OTPCodeForm, ProfileForm, ReauthenticateForm, TOTPConfirmForm
from .selectors import audit_event_list_for_user, mfa_status_for_user

RATE_LIMITED_MESSAGE = "Too many attempts from your network. Please wait a few minutes and try again."


def ratelimited(request, exception=None):
    """The answer to a rate-limited request: JSON for API callers, a plain page for people."""
    if wants_json(request):
        return JsonResponse({"detail": RATE_LIMITED_MESSAGE, "code": "rate_limited"}, status=429)
    response = render(request, "accounts/rate_limited.html", {"message": RATE_LIMITED_MESSAGE}, status=429)
    response["Retry-After"] = "60"
    return response


def rate_limit_post(group: str, rate_setting: str):
    """Per-IP limit on form submissions; the rate is read from settings on each request so tests can change it."""

    def rate(_group, _request):
        return getattr(settings, rate_setting)

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if is_ratelimited(request, group=group, key="ip", rate=rate, method="POST", increment=True):
                return ratelimited(request)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def safe_local_path(request, url: str | None) -> str | None:
    """`url` when it is a path on this site; None for anything that could leave it (`//evil`, `https://…`)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return None
    if not url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return None
    return url


class LoginView(allauth_views.LoginView):
    """allauth's login; `/login/<action>` continues to `/<action>` afterwards (a `next` parameter still wins)."""

    def action_url(self) -> str | None:
        action = self.kwargs.get("action")
        if not action:
            return None
        url = "/" + action
        query = self.request.META.get("QUERY_STRING", "")
        if query:
            url = f"{url}?{query}"
        return safe_local_path(self.request, url)

    def get_next_url(self):
        return super().get_next_url() or self.action_url()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["failure_limit"] = settings.AXES_FAILURE_LIMIT
        context["lockout_minutes"] = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
        return context


login_view = rate_limit_post("login", "RATE_LIMIT_LOGIN")(LoginView.as_view())
register_view = rate_limit_post("register", "RATE_LIMIT_REGISTER")(allauth_views.SignupView.as_view())
password_reset_view = rate_limit_post("password_reset", "RATE_LIMIT_PASSWORD_RESET")(
    allauth_views.PasswordResetView.as_view()
)
logout_view = allauth_views.LogoutView.as_view()


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your name was saved.")
        return redirect("profile")
    context = {
        "form": form,
        "mfa_status": mfa_status_for_user(user=request.user),
        "recent_events": audit_event_list_for_user(user=request.user),
    }
    return render(request, "accounts/profile.html", context)


def _qr_svg(device) -> str:
    # Drawn on the server as inline SVG: no external QR service sees the secret, and CSP needs no script.
    qr = segno.make(device.config_url, error="m")
    return mark_safe(qr.svg_inline(scale=5, border=2, dark="#000", light="#fff", title="QR code for your app"))  # noqa: S308


def _base32_secret(device) -> str:
    from base64 import b32encode

    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_setup(request):
    """Scan the QR code, confirm with a code, then see the backup codes once."""
    if mfa.user_has_confirmed_mfa(request.user):
        messages.info(request, "Two-factor login is already on for your account.")
        return redirect("profile")
    device = mfa.mfa_totp_start(user=request.user)
    form = TOTPConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = mfa.mfa_totp_confirm(user=request.user, code=form.cleaned_data["code"], request=request)
        except mfa.MFAError as error:
            form.add_error("code", error.message)
        else:
            return render(request, "accounts/mfa_backup_codes.html", {"codes": codes, "just_enabled": True})
    context = {"form": form, "qr_svg": _qr_svg(device), "secret": _base32_secret(device)}
    return render(request, "accounts/mfa_setup.html", context)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
@rate_limit_post("mfa_manage", "RATE_LIMIT_LOGIN")
def mfa_backup_codes(request):
    if not mfa.user_has_confirmed_mfa(request.user):
        return redirect("mfa_setup")
    form = ReauthenticateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = mfa.mfa_backup_codes_regenerate(
                user=request.user, secret=form.cleaned_data["secret"], request=request
            )
        except mfa.MFAError as error:
            form.add_error("secret", error.message)
        else:
            return render(request, "accounts/mfa_backup_codes.html", {"codes": codes, "just_enabled": False})
    return render(request, "accounts/mfa_regenerate.html", {"form": form})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
@rate_limit_post("mfa_manage", "RATE_LIMIT_LOGIN")
def mfa_disable(request):
    if not mfa.user_has_confirmed_mfa(request.user):
        return redirect("profile")
    form = ReauthenticateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            mfa.mfa_disable(user=request.user, secret=form.cleaned_data["secret"], request=request)
        except mfa.MFAError as error:
            form.add_error("secret", error.message)
        else:
            messages.success(
                request, "Two-factor login is off. Your authenticator app and backup codes no longer work."
            )
            return redirect("profile")
    staff_warning = request.user.is_staff and settings.MFA_REQUIRED_FOR_STAFF
    return render(request, "accounts/mfa_disable.html", {"form": form, "staff_warning": staff_warning})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
@rate_limit_post("mfa_verify", "RATE_LIMIT_LOGIN")
def mfa_verify(request):
    """The second step of login for users with two-factor on."""
    next_url = (
        safe_local_path(request, request.POST.get("next") or request.GET.get("next")) or settings.LOGIN_REDIRECT_URL
    )
    if not mfa.user_has_confirmed_mfa(request.user) or request.user.is_verified():
        return HttpResponseRedirect(next_url)
    form = OTPCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = mfa.mfa_verify_login(request=request, code=form.cleaned_data["code"])
        except mfa.MFAError as error:
            form.add_error("code", error.message)
        else:
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                messages.warning(
                    request,
                    f"You used a backup code; {left} remain. Make new ones on your profile page when few are left.",
                )
            return HttpResponseRedirect(next_url)
    return render(request, "accounts/mfa_verify.html", {"form": form, "next": next_url})
