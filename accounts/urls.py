"""Account pages. The contract paths (/login, /register, /logout) carry allauth's URL names, so allauth's own
redirects and templates point at them; allauth's remaining URLs (email confirmation, password reset keys)
stay under /accounts/ where its emails link to."""

from django.urls import include, path

from . import views

urlpatterns = [
    # allauth's copies of the rate-limited views: shadowed so /accounts/... cannot bypass our limits.
    path("accounts/login/", views.login_view),
    path("accounts/signup/", views.register_view),
    path("accounts/logout/", views.logout_view),
    path("accounts/password/reset/", views.password_reset_view),
    path("accounts/", include("allauth.urls")),
    # Defined after the include: for a duplicated name, reverse() returns the last pattern.
    path("login", views.login_view, name="account_login"),
    path("login/<path:action>", views.login_view, name="login_action"),
    path("register", views.register_view, name="account_signup"),
    path("logout", views.logout_view, name="account_logout"),
    path("password/reset", views.password_reset_view, name="account_reset_password"),
    path("profile", views.profile, name="profile"),
    path("profile/mfa/setup", views.mfa_setup, name="mfa_setup"),
    path("profile/mfa/backup-codes", views.mfa_backup_codes, name="mfa_backup_codes"),
    path("profile/mfa/disable", views.mfa_disable, name="mfa_disable"),
    path("mfa/verify", views.mfa_verify, name="mfa_verify"),
]
