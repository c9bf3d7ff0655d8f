"""Public pages, the dashboard and the user guide."""

from django.urls import path

from . import pages

urlpatterns = [
    path("", pages.welcome, name="welcome"),
    path("dashboard", pages.dashboard, name="dashboard"),
    path("privacy", pages.info_page, {"template_name": "pages/privacy.html"}, name="privacy"),
    path("terms", pages.info_page, {"template_name": "pages/terms.html"}, name="terms"),
    path("cookies", pages.info_page, {"template_name": "pages/cookies.html"}, name="cookies"),
    path("compliance", pages.info_page, {"template_name": "pages/compliance.html"}, name="compliance"),
    path("faq", pages.info_page, {"template_name": "pages/faq.html"}, name="faq"),
    path("support", pages.info_page, {"template_name": "pages/support.html"}, name="support"),
    path("docs/", pages.docs_index, name="docs-index"),
    path("docs/<slug:slug>/", pages.docs_section, name="docs-section"),
    path("favicon.ico", pages.favicon),
]
