"""Admin for users (with their two-factor devices and lockouts), the read-only audit log and axes lockouts.

Groups stay Django's own and serve as roles. Only superusers grant roles: for everyone else the fields that
confer powers are read-only and refused on save, and superusers' own accounts are read-only, since changing
their e-mail or password would be a takeover.
"""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import audit_record
from .lockout import lockout_clear
from .mfa import mfa_reset_by_staff
from .models import AuditEvent, User

# The device admins of django-otp show TOTP secrets and backup codes to every staff member; devices are
# managed from the user page below instead, without their secrets.
# The fields that confer powers: a staff member who could change them could make themselves superuser.
ROLE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class _DeviceInline(admin.TabularInline):
    extra = 0
    can_delete = True
    fields = ["name", "confirmed", "created_at", "last_used_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TOTPDeviceInline(_DeviceInline):
    model = TOTPDevice
    verbose_name = "authenticator app"
    verbose_name_plural = "Two-factor: authenticator apps (delete to reset a lost phone)"


class StaticDeviceInline(_DeviceInline):
    model = StaticDevice
    verbose_name = "backup code set"
    verbose_name_plural = "Two-factor: backup codes"
    fields = ["name", "confirmed", "created_at", "last_used_at", "codes_left"]
    readonly_fields = fields

    @admin.display(description="unused codes")
    def codes_left(self, obj):
        return obj.token_set.count()


class MFAEnabledFilter(admin.SimpleListFilter):
    title = "two-factor login"
    parameter_name = "mfa"

    def lookups(self, request, model_admin):
        return [("on", "On"), ("off", "Off")]

    def queryset(self, request, queryset):
        if self.value() == "on":
            return queryset.filter(mfa_enabled=True)
        if self.value() == "off":
            return queryset.filter(mfa_enabled=False)
        return queryset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "mfa_on", "last_login", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active", MFAEnabledFilter, "groups", "date_joined"]
    search_fields = ["email", "first_name", "last_name"]
    ordering = ["email"]
    readonly_fields = ["last_login", "date_joined", "lockouts"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name"]}),
        ("Roles and permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Security", {"fields": ["lockouts", "last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "usable_password", "password1", "password2"]}),
    ]
    inlines = [TOTPDeviceInline, StaticDeviceInline]
    actions = ["reset_two_factor", "clear_lockouts"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += [field for field in ROLE_FIELDS if field not in readonly]
        return readonly

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # The read-only fields are not on the form; this refuses a change that reached the model another way.
        if not request.user.is_superuser:
            stored = User.objects.filter(pk=obj.pk).values("is_staff", "is_superuser").first() if change else None
            before = stored or {"is_staff": False, "is_superuser": False}
            if obj.is_staff != before["is_staff"] or obj.is_superuser != before["is_superuser"]:
                raise PermissionDenied("Only a superuser can change who is staff or superuser.")
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if not request.user.is_superuser and {"groups", "user_permissions"} & set(form.changed_data):
            raise PermissionDenied("Only a superuser can change a user's groups and permissions.")
        super().save_related(request, form, formsets, change)

    def _without_superusers(self, request, queryset):
        """A non-superuser's two-factor reset skips superusers: with a superuser's password alone, whoever signs in
        next could enrol their own authenticator app."""
        if request.user.is_superuser:
            return queryset
        skipped = queryset.filter(is_superuser=True).count()
        if skipped:
            self.message_user(
                request, f"Skipped {skipped} superuser account(s): only a superuser can change them.", messages.WARNING
            )
        return queryset.filter(is_superuser=False)

    def get_inlines(self, request, obj):
        # A user being created has no devices yet; they set up two-factor themselves from their profile.
        return self.inlines if obj is not None else []

    def get_queryset(self, request):
        confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).annotate(mfa_enabled=Exists(confirmed))

    @admin.display(description="2FA", boolean=True, ordering="mfa_enabled")
    def mfa_on(self, obj):
        return getattr(obj, "mfa_enabled", False)

    @admin.display(description="failed logins (lockouts)")
    def lockouts(self, obj):
        if obj.pk is None:
            return "-"
        attempts = AccessAttempt.objects.filter(username=obj.email.lower()).order_by("-attempt_time")
        if not attempts:
            return "None"
        url = reverse("admin:axes_accessattempt_changelist") + f"?username={obj.email.lower()}"
        rows = format_html_join(
            ", ",
            "{} failures from {} (last {})",
            ((a.failures_since_start, a.ip_address, a.attempt_time) for a in attempts),
        )
        return format_html('{} — <a href="{}">view or clear</a>', rows, url)

    @admin.action(
        description="Reset two-factor login (lost phone): remove app and backup codes", permissions=["change"]
    )
    def reset_two_factor(self, request, queryset):
        queryset = self._without_superusers(request, queryset)
        reset = sum(mfa_reset_by_staff(user=user, staff=request.user, request=request) for user in queryset)
        self.message_user(request, f"Two-factor login reset for {reset} user(s).", messages.SUCCESS)

    @admin.action(description="Clear login lockouts (let them log in again now)", permissions=["change"])
    def clear_lockouts(self, request, queryset):
        removed = sum(lockout_clear(email=user.email, request=request, staff=request.user) for user in queryset)
        self.message_user(request, f"Cleared {removed} lockout record(s).", messages.SUCCESS)

    def save_formset(self, request, form, formset, change):
        # Deleting a device inline is a two-factor change like any other: it goes to the audit log.
        super().save_formset(request, form, formset, change)
        for device in formset.deleted_objects:
            audit_record(
                action=AuditEvent.Action.MFA_DISABLED,
                request=request,
                target=form.instance,
                details={"by_staff": True, "device": device.name},
            )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, even for superusers."""

    list_display = ["created_at", "action", "actor_email", "target_repr_or_id", "ip_address", "request_id"]
    list_filter = ["action", "created_at"]
    search_fields = ["actor_email", "target_repr", "target_id", "ip_address", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    @admin.display(description="target")
    def target_repr_or_id(self, obj):
        return obj.target_repr or (f"{obj.target_type}:{obj.target_id}" if obj.target_id else "")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
    """axes' lockout list; deleting a row unlocks that account+IP and is recorded in the audit log."""

    def _audit_unlock(self, request, attempts):
        for attempt in attempts:
            audit_record(
                action=AuditEvent.Action.UNLOCKED,
                request=request,
                target_type="accounts.user",
                target_id=attempt.username or "",
                details={"locked_ip": attempt.ip_address, "failures": attempt.failures_since_start},
            )

    def delete_model(self, request, obj):
        self._audit_unlock(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        self._audit_unlock(request, list(queryset))
        super().delete_queryset(request, queryset)
