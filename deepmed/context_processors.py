from django.conf import settings


def platform(request):
    return {"SUPPORT_EMAIL": settings.SUPPORT_EMAIL, "DEBUG": settings.DEBUG}
