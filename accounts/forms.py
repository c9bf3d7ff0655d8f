"""Forms of the account pages (allauth's own forms serve login and password reset; registration is theirs with one
change, below)."""

from allauth.account import forms as allauth_forms
from django import forms
from django.contrib.auth.hashers import make_password

from .models import User


class SignupForm(allauth_forms.SignupForm):
    """allauth's registration form, doing the same work for a taken address as for a new one.

    allauth answers a taken address with the same page as a new one (and e-mails the owner), but skipped the
    password hash that creating an account costs: the answer time told the two apart. The hash computed here is
    thrown away; it only makes both paths cost the same.
    """

    def try_save(self, request):
        if self.account_already_exists:
            make_password(self.cleaned_data.get("password1"))
        return super().try_save(request)


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["first_name", "last_name"]
        widgets = {
            "first_name": forms.TextInput(attrs={"autocomplete": "given-name"}),
            "last_name": forms.TextInput(attrs={"autocomplete": "family-name"}),
        }


class OTPCodeForm(forms.Form):
    """A code from the authenticator app (six digits) or, where allowed, a backup code."""

    code = forms.CharField(
        label="Authentication code",
        max_length=32,
        strip=True,
        help_text="The 6-digit code your authenticator app shows now, or one of your backup codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false", "autofocus": True}
        ),
    )


class TOTPConfirmForm(forms.Form):
    code = forms.CharField(
        label="Code from your app",
        max_length=12,
        strip=True,
        help_text="Enter the 6-digit code your authenticator app shows for DeepMed.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": r"[0-9 ]*", "autofocus": True}
        ),
    )


class ReauthenticateForm(forms.Form):
    """Sensitive two-factor changes ask again: a current code, a backup code, or the account password."""

    secret = forms.CharField(
        label="Current code or your password",
        max_length=128,
        strip=False,
        help_text="A code from your authenticator app, an unused backup code, or your account password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
