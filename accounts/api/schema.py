"""OpenAPI description of our authentication class (drf-spectacular matches extensions by exact class)."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class ForceLogoutAwareJWTScheme(SimpleJWTScheme):
    """Same Bearer scheme as simplejwt's, so Swagger UI's "Authorize" button works with our tokens."""

    target_class = "accounts.api.authentication.ForceLogoutAwareJWTAuthentication"
