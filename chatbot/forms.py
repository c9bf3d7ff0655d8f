"""The staff form that adds a knowledge-base document (a file or pasted text)."""

from django import forms
from django.conf import settings
from django.contrib.auth.models import Group

from .models import KnowledgeDocument


class KnowledgeDocumentForm(forms.Form):
    title = forms.CharField(max_length=300)
    file = forms.FileField(
        required=False,
        help_text="Markdown, plain text, HTML or PDF.",
        widget=forms.ClearableFileInput(attrs={"accept": ".md,.markdown,.txt,.html,.htm,.pdf"}),
    )
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}), strip=False, label="Or paste text")
    format = forms.ChoiceField(
        choices=KnowledgeDocument.Format.choices,
        initial=KnowledgeDocument.Format.MARKDOWN,
        help_text="How pasted text is written (files are recognised by themselves).",
    )
    source = forms.CharField(max_length=200, initial="Uploaded", help_text="e.g. the publisher or the department.")
    licence = forms.CharField(max_length=200, required=False)
    version = forms.CharField(max_length=100, required=False, help_text="A version or date.")
    group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        empty_label="Everyone",
        help_text="Restrict the document to the members of one group.",
    )

    def clean(self):
        cleaned = super().clean()
        has_file = bool(cleaned.get("file"))
        has_text = bool((cleaned.get("text") or "").strip())
        if has_file == has_text:
            raise forms.ValidationError("Choose a file or paste text (one of the two).")
        upload = cleaned.get("file")
        if upload is not None and upload.size > settings.CHAT_MAX_DOCUMENT_MB * 1024 * 1024:
            self.add_error("file", f"The file is larger than {settings.CHAT_MAX_DOCUMENT_MB} MB.")
        return cleaned
