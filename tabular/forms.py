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


class TargetForm(forms.Form):
    target = forms.ChoiceField(label="Outcome column", choices=())

    def __init__(self, *args, columns: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(name, name) for name in columns]


class FeatureSelectionForm(forms.Form):
    method = forms.ChoiceField(label="Method", choices=())
    k = forms.IntegerField(label="Keep the best k", min_value=1, required=False)
    threshold = forms.FloatField(label="Or keep scores of at least", required=False)

    def __init__(self, *args, methods: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = methods
