"""Users (the original `users` table) and the append-only audit log."""

import unicodedata

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


def email_normalise(value: str | None) -> str:
    """The one form of an e-mail address that is stored, looked up, registered and locked out: NFKC, casefolded.

    Full-width letters, ligatures and letter case (including "ß" = "ss") collapse to one spelling, so every door
    (web, admin, API, registration, django-axes' lockout key) names an account the same way. Accents are kept: they
    make another address. Lookups compare this form exactly (on MariaDB the column is binary, migration 0003).
    """
    folded = unicodedata.normalize("NFKC", (value or "").strip()).casefold()
    # casefold() can leave a string NFKC would change again (it decomposes "ΐ"); a second pass makes it a fixed point.
    return unicodedata.normalize("NFKC", folded)


class UserManager(BaseUserManager):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email):
        return email_normalise(email)

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required")
        email = self.normalize_email(email)
        user = self.model(email=email, **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username):
        # Exact on the normal form: `iexact` is also accent-insensitive on MariaDB and found other addresses.
        return self.get(**{self.model.USERNAME_FIELD: email_normalise(username)})


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address; the original `users` table."""

    email = models.EmailField("email address", max_length=254, unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Can log in to the admin (with MFA).")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now, db_column="created_at")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"
        ordering = ["email"]

    def __str__(self):
        return self.email

    @classmethod
    def normalize_username(cls, username):
        # Called by clean(), so the admin's forms store (and check uniqueness of) the normal form too.
        return email_normalise(username)

    def save(self, *args, **kwargs):
        self.email = email_normalise(self.email)
        super().save(*args, **kwargs)

    def get_full_name(self):
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self):
        return self.first_name or self.email


class AuditEvent(models.Model):
    """One security-relevant action: who did what to which target, from where, when. Never updated or deleted."""

    class Action(models.TextChoices):
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOGOUT = "logout", "Logout"
        LOCKED_OUT = "locked_out", "Locked out"
        ACCOUNT_LOCKED = "account_locked", "Account locked (failures from many addresses)"
        FORCE_LOGOUT = "force_logout", "Force logout"
        TOKEN_ISSUED = "token_issued", "API token issued"
        TOKEN_FAILED = "token_failed", "API token refused"
        TOKEN_REVOKED = "token_revoked", "API token revoked"
        API_TOKENS_REVOKED = "api_tokens_revoked", "All API tokens revoked"
        MFA_ENABLED = "mfa_enabled", "MFA enabled"
        MFA_DISABLED = "mfa_disabled", "MFA disabled"
        MFA_VERIFIED = "mfa_verified", "MFA code accepted"
        MFA_FAILED = "mfa_failed", "MFA code refused"
        BACKUP_CODES_REGENERATED = "backup_codes_regenerated", "Backup codes regenerated"
        REGISTERED = "registered", "Registered"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        PASSWORD_RESET = "password_reset", "Password reset"
        UNLOCKED = "unlocked", "Lockout cleared"
        DOWNLOAD = "download", "Download"
        MODEL_SELECTED = "model_selected", "Model selected"
        DELETED = "deleted", "Deleted"
        RETENTION = "retention", "Retention sweep"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor_email = models.CharField(max_length=254, blank=True, help_text="Kept when the user is later deleted.")
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "audit_events"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["actor", "-created_at"]), models.Index(fields=["target_type", "target_id"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_email or '-'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only")
