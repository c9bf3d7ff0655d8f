from django.apps import AppConfig


class ModelhubConfig(AppConfig):
    name = "modelhub"
    verbose_name = "Model hub"

    def ready(self):
        # Registers the training_models table with the storage check (/check_downloads_dir).
        from . import storage  # noqa: F401
