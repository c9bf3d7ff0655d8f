"""`{% load model_groups %}`: `rows|group_by_run` for /my_models (see modelhub.run_groups)."""

from django import template

from modelhub.run_groups import model_rows_by_run

register = template.Library()


@register.filter
def group_by_run(rows):
    return model_rows_by_run(rows)
