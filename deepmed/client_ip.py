"""The client's address behind our own reverse proxies: one rule for every per-client limit.

Behind nginx (or an ingress) every request reaches Django from the proxy's address, so with REMOTE_ADDR alone
each per-client rate limit, lockout and throttle would be one limit for the whole site. Each proxy of ours appends
the address it received the request from to X-Forwarded-For, so the TRUSTED_PROXY_COUNT-th entry from the right is
the address our outermost proxy saw. Everything to its left was written by the client and is never believed.

django-ratelimit (RATELIMIT_IP_META_KEY) and django-axes (AXES_CLIENT_IP_CALLABLE) call `client_ip`; DRF's
NUM_PROXIES and allauth's ALLAUTH_TRUSTED_PROXY_COUNT apply the same count (deepmed/settings.py). /metrics does
not: its allow-list is for scrapers that reach the pod directly and reads REMOTE_ADDR only (deepmed/metrics.py).
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the TRUSTED_PROXY_COUNT-th X-Forwarded-For entry from the right."""
    remote_addr = request.META.get("REMOTE_ADDR", "")
    proxy_count = settings.TRUSTED_PROXY_COUNT
    forwarded_for = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxy_count <= 0 or not forwarded_for:
        return remote_addr
    entries = [entry.strip() for entry in forwarded_for.split(",")]
    # Fewer entries than proxies: the request did not come through all of them (a direct hit on the pod).
    if len(entries) < proxy_count:
        return remote_addr
    try:
        return str(ipaddress.ip_address(entries[-proxy_count]))
    except ValueError:
        # Only a count set higher than the real number of proxies reaches a client-written entry; a malformed one
        # must not become a limit key of its own (or a database error in axes' log), so the proxy's address counts.
        return remote_addr
