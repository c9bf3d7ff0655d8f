"""Bearer authentication that honours force logout and two-factor login.

Force logout blacklists refresh tokens and deletes sessions, but an access token is a signed, self-contained
claim that stays valid until it expires (JWT_ACCESS_MINUTES, 15 by default). To end those too without a column
on the user, each request compares the token's auth time with the user's FORCE_LOGOUT and API_TOKENS_REVOKED
(password changed or reset) events in the audit log:
the log is append-only and indexed on the target, so the check is one small indexed query, and it survives
restarts and cache flushes, which a cache-only marker would not.

Two-factor: the token endpoint sets the OTP_CLAIM only after it accepted a code. For a user who has an
authenticator app, a token without it (obtained with the password alone, before they turned two-factor on) is
refused, as a password-only session is held at the OTP step; staff powers need the claim (accounts.permissions).
"""

from datetime import UTC, datetime

from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication

# DRF imports this module while loading its settings, often before the app registry is ready: it must not
# import models or services at module level (deepmed.exceptions -> rest_framework.views -> here would cycle).

# Set on every token accounts.services issues (and copied by simplejwt into refreshed access tokens): when the
# user last presented their password. `iat` is whole seconds, too coarse to order a token against a force
# logout made in the same second; this claim keeps microseconds.
AUTH_TIME_CLAIM = "auth_time"
# Set to true on tokens issued after the user's code was accepted; copied into refreshed access tokens.
OTP_CLAIM = "otp"


def user_forced_out_since(*, user, moment: datetime) -> bool:
    """True when staff forced `user` out, or the password changed (accounts.services.user_api_tokens_revoke), after
    `moment`."""
    from accounts.models import AuditEvent

    return AuditEvent.objects.filter(
        action__in=[AuditEvent.Action.FORCE_LOGOUT, AuditEvent.Action.API_TOKENS_REVOKED],
        target_type=user._meta.label_lower,
        target_id=str(user.pk),
        created_at__gte=moment,
    ).exists()


def token_has_second_factor(token) -> bool:
    """True when the token endpoint accepted a two-factor code before issuing this token (or its refresh token)."""
    return token is not None and hasattr(token, "payload") and token.get(OTP_CLAIM) is True


def token_auth_time(token) -> datetime | None:
    """When the user presented their password for this token: our claim, else the coarser `iat`."""
    value = token.get(AUTH_TIME_CLAIM, token.get("iat"))
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)


class ForceLogoutAwareJWTAuthentication(JWTAuthentication):
    """simplejwt's Bearer authentication, refusing access tokens obtained before the user's last force logout
    and tokens without a second factor for users who have an authenticator app."""

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        auth_time = token_auth_time(validated_token)
        if auth_time is None or user_forced_out_since(user=user, moment=auth_time):
            raise AuthenticationFailed(
                "This token was revoked: the account's password was changed, or an administrator ended its "
                "sessions. Sign in again at /api/v1/auth/token/.",
                code="session_ended",
            )
        if not token_has_second_factor(validated_token):
            from accounts.mfa import user_has_confirmed_mfa

            if user_has_confirmed_mfa(user):
                raise AuthenticationFailed(
                    "This token was issued without a two-factor code, and this account uses two-factor login. "
                    "Sign in again at /api/v1/auth/token/ and send the code from your authenticator app in `otp`.",
                    code="otp_required",
                )
        return user
