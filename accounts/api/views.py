"""JSON endpoints for integrators: JWT pairs, the caller's profile, and staff force logout."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import User, email_normalise
from accounts.permissions import IsVerifiedStaff
from deepmed.api_schema import error_response
from deepmed.exceptions import NotFound

from . import schema  # noqa: F401  (registers the OpenAPI extension for our JWT authentication)
from .serializers import (
    ForceLogoutResultSerializer,
    ForceLogoutSerializer,
    MeSerializer,
    RefreshTokenSerializer,
    TokenObtainSerializer,
    TokenPairSerializer,
)
from .throttles import SettingsScopedRateThrottle


class TokenObtainView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [SettingsScopedRateThrottle]
    throttle_scope = "token"

    @extend_schema(
        operation_id="auth_token_obtain",
        tags=["accounts"],
        summary="Get an access/refresh token pair",
        description=(
            "Accounts with two-factor login on must also send `otp`; without it the answer is 401 with code "
            "`otp_required`, so a client can ask its user for the code and repeat the call. Failures count towards "
            "the same lockout as the web login (429, code `locked_out`)."
        ),
        request=TokenObtainSerializer,
        responses={
            200: TokenPairSerializer,
            400: error_response("Missing or malformed fields."),
            401: error_response(
                "Wrong credentials (`authentication_failed`), `otp_required`, `otp_invalid`, or `email_unverified` "
                "(the address is not confirmed yet while verification is mandatory)."
            ),
            429: error_response("Account+address locked after repeated failures (`locked_out`), or throttled."),
        },
        examples=[
            OpenApiExample(
                "With two-factor code",
                value={"email": "clinician@example.org", "password": "…", "otp": "123456"},
                request_only=True,
            )
        ],
        auth=[],
    )
    def post(self, request):
        serializer = TokenObtainSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tokens = services.token_pair_obtain(
            request=request,
            email=serializer.validated_data["email"],
            password=serializer.validated_data["password"],
            otp=serializer.validated_data.get("otp") or None,
        )
        return Response(tokens)


class TokenRefreshView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="auth_token_refresh",
        tags=["accounts"],
        summary="Exchange a refresh token for a new pair",
        description="The refresh token sent is revoked: reusing it is refused with 401 `token_not_valid`.",
        request=RefreshTokenSerializer,
        responses={
            200: TokenPairSerializer,
            400: error_response("Missing `refresh`."),
            401: error_response("Expired, revoked, reused or malformed refresh token."),
        },
        auth=[],
    )
    def post(self, request):
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(services.token_pair_refresh(refresh=serializer.validated_data["refresh"]))


class LogoutView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="auth_logout",
        tags=["accounts"],
        summary="Revoke a refresh token",
        description=(
            "Blacklists the refresh token; the access token it produced keeps working until it expires. "
            "When the call is authenticated, the token must belong to the caller."
        ),
        request=RefreshTokenSerializer,
        responses={
            205: OpenApiResponse(description="Revoked; the response has no body."),
            400: error_response("Missing `refresh`."),
            401: error_response("Expired, revoked or malformed refresh token."),
            403: error_response("The refresh token belongs to another account."),
        },
    )
    def post(self, request):
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.refresh_token_revoke(refresh=serializer.validated_data["refresh"], user=request.user, request=request)
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="me_retrieve",
        tags=["accounts"],
        summary="The signed-in user",
        responses={200: MeSerializer, 401: error_response("Not signed in.")},
    )
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class ForceLogoutView(APIView):
    permission_classes = [IsVerifiedStaff]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="force_logout",
        tags=["accounts"],
        summary="End every session and revoke every token of a user (staff only)",
        description=(
            "Send `user_id` or `email` (both: they must name the same user). Sessions end at once, refresh tokens "
            "are blacklisted, and access tokens obtained before this call are refused from now on."
        ),
        request=ForceLogoutSerializer,
        responses={
            200: ForceLogoutResultSerializer,
            400: error_response("Neither `user_id` nor `email` given."),
            401: error_response("Not signed in."),
            403: error_response(
                "The caller is not staff, has no second factor (`mfa_required`), or is not a superuser and named "
                "a superuser."
            ),
            404: error_response("No such user."),
            415: error_response("The body is not JSON."),
        },
    )
    def post(self, request):
        serializer = ForceLogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lookup = {}
        if "user_id" in serializer.validated_data:
            lookup["pk"] = serializer.validated_data["user_id"]
        if serializer.validated_data.get("email"):
            lookup["email"] = email_normalise(serializer.validated_data["email"])
        user = User.objects.filter(**lookup).first()
        if user is None:
            raise NotFound("No user has that id or email address. Check it in the admin's user list.")
        counts = services.user_force_logout(user=user, actor=request.user, request=request)
        detail = (
            f"{user.email} is logged out everywhere: {counts['sessions_ended']} session(s) ended, "
            f"{counts['tokens_blacklisted']} refresh token(s) revoked."
        )
        return Response({"detail": detail, **counts})
