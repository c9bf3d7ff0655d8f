from django.apps import AppConfig


class TabularConfig(AppConfig):
    name = "tabular"
