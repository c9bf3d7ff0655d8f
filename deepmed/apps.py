from django.apps import AppConfig


class DeepmedConfig(AppConfig):
    name = "deepmed"
    verbose_name = "DeepMed platform"

    def ready(self):
        from . import mail  # noqa: F401  (registers the mail backend system check)
