from django.http import JsonResponse


def ratelimited(request, exception=None):
    return JsonResponse(
        {"detail": "Too many attempts. Please wait a few minutes and try again.", "code": "rate_limited"}, status=429
    )
