"""Request and response shapes of the accounts API (they also drive the OpenAPI schema)."""

from rest_framework import serializers

from accounts.mfa import user_has_confirmed_mfa
from accounts.models import User
from deepmed.api_schema import ErrorSerializer  # noqa: F401  (re-exported for the views)


class TokenObtainSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False, style={"input_type": "password"})
    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text="The 6-digit code from the authenticator app, or an unused backup code. "
        "Required when the account has two-factor login on.",
    )


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="Send as `Authorization: Bearer <access>`; short-lived.")
    refresh = serializers.CharField(help_text="Exchange at /api/v1/auth/token/refresh/; usable once (rotation).")


class RefreshTokenSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class MeSerializer(serializers.ModelSerializer):
    mfa_enabled = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "first_name", "last_name", "is_staff", "mfa_enabled", "date_joined"]
        read_only_fields = fields

    def get_mfa_enabled(self, user) -> bool:
        return user_has_confirmed_mfa(user)


class ForceLogoutSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(required=False, min_value=1)
    email = serializers.EmailField(required=False)

    def validate(self, attrs):
        if "user_id" not in attrs and not attrs.get("email"):
            raise serializers.ValidationError("Send either `user_id` or `email` of the user to log out.")
        return attrs


class ForceLogoutResultSerializer(serializers.Serializer):
    detail = serializers.CharField()
    sessions_ended = serializers.IntegerField()
    tokens_blacklisted = serializers.IntegerField()
