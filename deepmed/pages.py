"""Public pages, the dashboard, the user guide and the error handlers."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseServerError, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.templatetags.static import static

from accounts.mfa import user_has_confirmed_mfa
from modelhub.selectors import training_model_list_for_user, training_run_list_for_user
from tabular.selectors import dataset_list_for_user

from .middleware import wants_json

DASHBOARD_RECENT_ROWS = 5


@dataclass(frozen=True)
class DocSection:
    """One page of the user guide; its template is `docs/<slug>.html`."""

    slug: str
    title: str
    summary: str
    available: bool = True

    @property
    def template_name(self) -> str:
        return f"docs/{self.slug}.html"


# The order here is the reading order of the guide (index, previous/next links).
DOC_SECTIONS: tuple[DocSection, ...] = (
    DocSection("getting-started", "Getting started", "What DeepMed is, how to sign in and find your way around."),
    DocSection(
        "accounts", "Accounts and two-factor login", "Registration, passwords, two-factor codes, backup codes, lockout."
    ),
    DocSection(
        "uploading-data",
        "Uploading data",
        "Preparing a CSV, Excel or JSON file and checking its profile.",
    ),
    DocSection(
        "cleaning",
        "Cleaning",
        "Reviewing the cleaning plan: dropped columns, missing values, encoding.",
    ),
    DocSection("training", "Training", "Choosing a target, models, search level and validation."),
    DocSection(
        "reading-the-report",
        "Reading the report",
        "Metrics, confidence intervals, curves and thresholds.",
    ),
    DocSection(
        "predicting",
        "Predicting",
        "Scoring new patients with a trained model and reading explanations.",
    ),
    DocSection("images", "Images", "Image classifiers, anomaly detection and augmentation."),
    DocSection("api", "The API", "Authenticating with JWT and calling DeepMed from your own software."),
)
_DOC_SECTIONS_BY_SLUG = {section.slug: section for section in DOC_SECTIONS}


def _settings_facts() -> dict:
    """Figures the legal pages and the guide quote, read from settings so the text matches this installation."""
    return {
        "retention_days": settings.RETENTION_DAYS,
        "max_upload_mb": settings.MAX_UPLOAD_MB,
        "max_image_zip_mb": settings.MAX_IMAGE_ZIP_MB,
        "login_failure_limit": settings.AXES_FAILURE_LIMIT,
        "lockout_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        "session_hours": settings.SESSION_COOKIE_AGE // 3600,
        "mfa_required_for_staff": settings.MFA_REQUIRED_FOR_STAFF,
        "jwt_access_minutes": int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds() // 60),
        "jwt_refresh_days": settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].days,
        "https_enforced": settings.SECURE_SSL_REDIRECT and settings.SECURE_HSTS_SECONDS > 0,
        "secure_cookies": settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE,
    }


def welcome(request):
    return render(request, "pages/welcome.html", _settings_facts())


@login_required
def dashboard(request):
    user = request.user
    context = {
        "datasets": list(dataset_list_for_user(user=user)[:DASHBOARD_RECENT_ROWS]),
        "runs": list(training_run_list_for_user(user=user)[:DASHBOARD_RECENT_ROWS]),
        "models": list(training_model_list_for_user(user=user)[:DASHBOARD_RECENT_ROWS]),
        # The same test the profile page and the login flow use, so "on" means the same everywhere.
        "has_mfa": user_has_confirmed_mfa(user),
        "retention_days": settings.RETENTION_DAYS,
    }
    return render(request, "pages/dashboard.html", context)


def info_page(request, *, template_name: str):
    return render(request, template_name, _settings_facts())


def docs_index(request):
    return render(request, "docs/index.html", {"sections": DOC_SECTIONS})


def docs_section(request, slug: str):
    section = _DOC_SECTIONS_BY_SLUG.get(slug)
    if section is None:
        raise Http404("No such section of the user guide.")
    position = DOC_SECTIONS.index(section)
    context = {
        **_settings_facts(),
        "section": section,
        "sections": DOC_SECTIONS,
        "previous_section": DOC_SECTIONS[position - 1] if position > 0 else None,
        "next_section": DOC_SECTIONS[position + 1] if position + 1 < len(DOC_SECTIONS) else None,
        # Examples show this server's own address so they can be pasted as they are.
        "base_url": request.build_absolute_uri("/").rstrip("/"),
    }
    return render(request, section.template_name, context)


def favicon(request):
    # Some browsers ask for /favicon.ico whatever the page's <link rel="icon"> says. Not a permanent redirect:
    # the target's hashed name changes whenever the icon does.
    return redirect(static("img/logo.svg"))


# --- error handlers -----------------------------------------------------------------------
# API clients get the `{"detail", "code"}` body of DESIGN.md §4; people get a page with a way home.


def _error_response(request, *, status: int, code: str, detail: str, template_name: str):
    if wants_json(request):
        return JsonResponse({"detail": detail, "code": code}, status=status)
    context = {"request_id": getattr(request, "request_id", "")}
    return render(request, template_name, context, status=status)


def bad_request(request, exception=None):
    return _error_response(
        request, status=400, code="bad_request", detail="The request could not be understood.", template_name="400.html"
    )


def permission_denied(request, exception=None):
    return _error_response(
        request,
        status=403,
        code="permission_denied",
        detail="You do not have permission to do this.",
        template_name="403.html",
    )


def page_not_found(request, exception=None):
    return _error_response(
        request, status=404, code="not_found", detail="Nothing exists at this address.", template_name="404.html"
    )


def server_error(request):
    """Rendered without the request context: the failure may be the database, so nothing here may query it."""
    request_id = getattr(request, "request_id", "")
    if wants_json(request):
        detail = "Something went wrong on our side. Please try again; if it keeps happening, contact support."
        return JsonResponse({"detail": detail, "code": "server_error", "request_id": request_id}, status=500)
    template = loader.get_template("500.html")
    return HttpResponseServerError(template.render({"request_id": request_id, "SUPPORT_EMAIL": settings.SUPPORT_EMAIL}))
