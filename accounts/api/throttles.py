"""Throttles for the accounts API."""

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class SettingsScopedRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, reading its rates from settings on each request.

    DRF copies DEFAULT_THROTTLE_RATES into a class attribute at import time, so a changed setting (an operator's
    override in a test or a management shell) would otherwise be ignored until the process restarts.
    """

    @property
    def THROTTLE_RATES(self):  # noqa: N802  (the name DRF looks up)
        return api_settings.DEFAULT_THROTTLE_RATES
