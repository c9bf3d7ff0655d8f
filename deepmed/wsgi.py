import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed.settings")
application = get_wsgi_application()

from deepmed.mail import refuse_unconfigured_mail  # noqa: E402  (needs the settings loaded above)

refuse_unconfigured_mail()
