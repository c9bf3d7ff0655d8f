from django.apps import AppConfig


class DeepmedConfig(AppConfig):
    name = "deepmed"
    verbose_name = "DeepMed platform"
