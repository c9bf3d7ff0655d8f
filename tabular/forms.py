"""Forms of the tabular pages. The API serializers validate the same inputs for integrators."""

from django import forms
from django.conf import settings


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        label="Data file",
        help_text=f"CSV, Excel (.xlsx) or JSON, up to {settings.MAX_UPLOAD_MB} MB.",
        allow_empty_file=True,  # the reader explains an empty file in the same words as the API
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt,.xlsx,.json"}),
    )
    name = forms.CharField(
        label="Dataset name", max_length=255, required=False, help_text="Defaults to the file's name."
    )
    sheet = forms.CharField(
        label="Excel sheet", max_length=255, required=False, help_text="Excel only; the first sheet by default."
    )


# How a flagged column reads in the outcome select: a clinician sees at once why it is not the outcome.
_FLAG_WORDS = {"personal_data": "personal data", "identifier": "identifier", "high_cardinality": "too many values"}
CONFIRM_FLAGGED_LABEL = "This really is the outcome: use it although it is flagged"


def outcome_choices(columns: list[str], outcome: dict | None) -> list[tuple[str, str]]:
    """The outcome select's options: flagged columns say so, and without a suggestion nothing is pre-chosen."""
    flagged = (outcome or {}).get("flagged", {})
    choices = [
        (
            name,
            f"{name} ({', '.join(_FLAG_WORDS.get(flag, flag) for flag in flagged[name])})" if name in flagged else name,
        )
        for name in columns
    ]
    if not suggested_outcome(outcome):
        choices.insert(0, ("", "Choose the outcome column…"))
    return choices


def suggested_outcome(outcome: dict | None) -> str | None:
    return ((outcome or {}).get("suggestion") or {}).get("column")


def flagged_target_error(target: str, outcome: dict | None) -> str | None:
    """The page's refusal of a flagged outcome (the services refuse it too, in the API's words)."""
    flags = (outcome or {}).get("flagged", {}).get(target)
    if not flags:
        return None
    words = " and ".join(_FLAG_WORDS.get(flag, flag) for flag in flags)
    return (
        f"“{target}” is flagged as {words} ({', '.join(flags)}), so it is almost certainly not the outcome. "
        f"Choose the outcome column, or tick “{CONFIRM_FLAGGED_LABEL}”."
    )


class TargetForm(forms.Form):
    """The outcome column, pre-set to the suggested one; a flagged column needs the confirm box ticked."""

    target = forms.ChoiceField(label="Outcome column", choices=())
    allow_flagged_target = forms.BooleanField(label=CONFIRM_FLAGGED_LABEL, required=False)

    def __init__(self, *args, columns: list[str], outcome: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcome = outcome
        self.fields["target"].choices = outcome_choices(columns, outcome)
        self.fields["target"].initial = suggested_outcome(outcome) or ""

    def clean(self):
        data = super().clean()
        error = flagged_target_error(data.get("target") or "", self.outcome)
        if error and not data.get("allow_flagged_target"):
            self.add_error("target", error)
        return data


class FeatureSelectionForm(forms.Form):
    method = forms.ChoiceField(label="Method", choices=())
    k = forms.IntegerField(label="Keep the best k", min_value=1, required=False)
    threshold = forms.FloatField(label="Or keep scores of at least", required=False)

    def __init__(self, *args, methods: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = methods
