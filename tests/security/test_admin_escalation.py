"""Issue 11 #3: a member of the ready-made "Security officers" role cannot make themselves (or anyone) superuser.

The role may change users (clear lockouts, reset a lost phone), and the admin's user form used to offer every
field to anyone with that permission: posting `is_superuser=on` on one's own user page made a security officer a
superuser. Only superusers may change is_superuser, is_staff, groups and permissions, and a non-superuser may not
change a superuser's account at all (its e-mail or password would be a takeover).
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from accounts.mfa import user_has_confirmed_mfa
from accounts.models import User

from .conftest import verified_login

pytestmark = pytest.mark.django_db


def change_url(user) -> str:
    return reverse("admin:accounts_user_change", args=[user.pk])


def escalation_form(user, **extra) -> dict:
    """What a crafted POST to the user's change page sends: the plain fields, the escalation, empty device forms."""
    everything = Permission.objects.filter(codename__in=["delete_auditevent", "add_user", "change_group"])
    return {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "groups": [str(group.pk) for group in Group.objects.all()],
        "user_permissions": [str(permission.pk) for permission in everything],
        "totpdevice_set-TOTAL_FORMS": "0",
        "totpdevice_set-INITIAL_FORMS": "0",
        "staticdevice_set-TOTAL_FORMS": "0",
        "staticdevice_set-INITIAL_FORMS": "0",
        **extra,
    }


@pytest.fixture
def officer_client(officer):
    return verified_login(Client(), officer)


def test_a_security_officer_cannot_make_themselves_superuser(officer_client, officer):
    Group.objects.create(name="Clinical leads")
    groups_before = set(officer.groups.values_list("pk", flat=True))

    officer_client.post(change_url(officer), escalation_form(officer, first_name="Olga P."))

    officer.refresh_from_db()
    assert not officer.is_superuser
    assert set(officer.groups.values_list("pk", flat=True)) == groups_before
    assert not officer.user_permissions.exists()
    assert not officer.has_perm("accounts.delete_auditevent")


def test_a_security_officer_still_edits_the_other_fields_of_their_own_user(officer_client, officer):
    response = officer_client.post(change_url(officer), escalation_form(officer, first_name="Olga P."))

    assert response.status_code == 302
    officer.refresh_from_db()
    assert officer.first_name == "Olga P."
    assert officer.is_staff and not officer.is_superuser


def test_a_security_officer_cannot_make_an_ordinary_user_staff(officer_client, alice):
    officer_client.post(change_url(alice), escalation_form(alice))

    alice.refresh_from_db()
    assert not alice.is_staff and not alice.is_superuser
    assert not alice.groups.exists() and not alice.user_permissions.exists()


def test_a_security_officer_cannot_take_a_staff_role_away(officer_client, bob):
    data = escalation_form(bob)
    del data["is_staff"], data["is_superuser"]

    officer_client.post(change_url(bob), data)

    bob.refresh_from_db()
    assert bob.is_staff


def test_the_role_fields_are_read_only_on_the_officers_form(officer_client, alice):
    html = officer_client.get(change_url(alice)).content.decode()

    for field in ("is_superuser", "is_staff", "groups", "user_permissions"):
        assert f'name="{field}"' not in html, field


def test_a_security_officer_cannot_change_a_superuser(officer_client, superuser):
    response = officer_client.post(change_url(superuser), escalation_form(superuser, email="olga@evil.example"))

    assert response.status_code == 403
    superuser.refresh_from_db()
    assert superuser.email == "root@example.org"
    password_page = reverse("admin:auth_user_password_change", args=[superuser.pk])
    assert officer_client.post(password_page, {"password1": "x" * 20, "password2": "x" * 20}).status_code in (403, 404)
    assert User.objects.get(pk=superuser.pk).check_password("x" * 20) is False


def test_a_security_officer_cannot_reset_a_superusers_two_factor(officer_client, superuser):
    changelist = reverse("admin:accounts_user_changelist")

    officer_client.post(changelist, {"action": "reset_two_factor", "_selected_action": [superuser.pk]})

    assert user_has_confirmed_mfa(superuser)


def test_a_superuser_may_still_grant_roles(superuser, officer):
    client = verified_login(Client(), superuser)

    response = client.post(change_url(officer), escalation_form(officer))

    assert response.status_code == 302
    officer.refresh_from_db()
    assert officer.is_superuser
    assert officer.user_permissions.count() == 3
