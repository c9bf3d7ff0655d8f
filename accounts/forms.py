"""Forms of the account pages (allauth's own forms serve login, registration and password reset)."""

from django import forms

from .models import User


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
