"""`{% load labels %}`: `{{ value|label:"metric" }}` and friends, the interface words of deepmed.labels."""

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format

from deepmed.labels import hyperparameter_name, hyperparameter_value
from deepmed.labels import label as label_for

register = template.Library()


@register.filter
def label(value, group: str = "") -> str:
    """`{{ model.model_name|label:"model" }}` → "Support vector machine"."""
    return label_for(value, group)


@register.filter
def percent(share, digits: int = 1) -> str:
    """0.4662 → "46.6%"; nothing for a missing share (a page never prints None or nan)."""
    try:
        value = float(share) * 100
    except (TypeError, ValueError):
        return ""
    if value != value:  # NaN
        return ""
    return f"{value:.{int(digits)}f}%"


@register.filter
def hyperparameter(name) -> str:
    return hyperparameter_name(name)


@register.filter
def hyperparameter_shown(value) -> str:
    return hyperparameter_value(value)


@register.filter
def moment(value) -> str:
    """An ISO 8601 time stored in JSON ("2026-12-02T14:40:19+00:00") as a reader writes it: "2 Dec 2026, 14:40"."""
    when = parse_datetime(str(value)) if value else None
    if when is None:
        return str(value or "")
    if timezone.is_aware(when):
        when = timezone.localtime(when)
    return date_format(when, "j M Y, H:i")
