import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed.settings")
application = get_asgi_application()

from deepmed.mail import refuse_unconfigured_mail  # noqa: E402  (needs the settings loaded above)

refuse_unconfigured_mail()
