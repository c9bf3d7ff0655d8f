"""Ready-made roles (Django groups). Created after every migrate, so a fresh or flushed database always has them."""

from django.contrib.auth.models import Group, Permission

SECURITY_OFFICERS = "Security officers"
# Staff who look after accounts: read the audit log, clear lockouts, reset two-factor. Never edit the audit log.
SECURITY_OFFICER_PERMISSIONS = [
    ("accounts", "view_user"),
    ("accounts", "change_user"),
    ("accounts", "view_auditevent"),
    ("axes", "view_accessattempt"),
    ("axes", "delete_accessattempt"),
    ("axes", "view_accessfailurelog"),
    ("axes", "view_accesslog"),
    ("otp_totp", "view_totpdevice"),
    ("otp_totp", "delete_totpdevice"),
    ("otp_static", "view_staticdevice"),
    ("otp_static", "delete_staticdevice"),
]


def roles_ensure(**kwargs) -> None:
    """Idempotent: creates the groups and adds any missing permission (a post_migrate receiver)."""
    group, _ = Group.objects.get_or_create(name=SECURITY_OFFICERS)
    for app_label, codename in SECURITY_OFFICER_PERMISSIONS:
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            group.permissions.add(permission)
