from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and security"

    def ready(self):
        from . import signals  # noqa: F401  (audit receivers)
        from .roles import roles_ensure

        # Once per migrate (and after the test runner's flush), after every app's permissions exist.
        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="accounts.roles_ensure")
