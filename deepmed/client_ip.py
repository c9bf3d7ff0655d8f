"""The client's address behind our own reverse proxies: one rule for every per-client limit.

Behind nginx (or an ingress) every request reaches Django from the proxy's address, so with REMOTE_ADDR alone
each per-client rate limit, lockout and throttle would be one limit for the whole site. Each proxy of ours appends
the address it received the request from to X-Forwarded-For, so the TRUSTED_PROXY_COUNT-th entry from the right is
the address our outermost proxy saw. Everything to its left was written by the client and is never believed.

The header is believed only when REMOTE_ADDR is one of our proxies (TRUSTED_PROXY_IPS, CIDRs): anything else that
reaches gunicorn directly (another pod, a container on the compose network) wrote the whole header itself, so its
own address is the one that counts. `UntrustedForwardedForMiddleware` removes such a header before any view runs,
so that libraries reading it on their own (DRF's throttles with NUM_PROXIES, allauth's ALLAUTH_TRUSTED_PROXY_COUNT)
follow the same rule.

django-ratelimit (RATELIMIT_IP_META_KEY) and django-axes (AXES_CLIENT_IP_CALLABLE) call `client_ip`; DRF's
NUM_PROXIES and allauth's ALLAUTH_TRUSTED_PROXY_COUNT apply the same count (deepmed/settings.py). /metrics does
not: its allow-list is for scrapers that reach the pod directly and reads REMOTE_ADDR only (deepmed/metrics.py).
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def from_trusted_proxy(request: HttpRequest) -> bool:
    """True when the request's peer (REMOTE_ADDR) is one of our proxies (TRUSTED_PROXY_IPS)."""
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in _networks(tuple(settings.TRUSTED_PROXY_IPS)))


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the TRUSTED_PROXY_COUNT-th X-Forwarded-For entry from the right when
    REMOTE_ADDR is a trusted proxy."""
    remote_addr = request.META.get("REMOTE_ADDR", "")
    proxy_count = settings.TRUSTED_PROXY_COUNT
    forwarded_for = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxy_count <= 0 or not forwarded_for or not from_trusted_proxy(request):
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


class UntrustedForwardedForMiddleware:
    """Drops X-Forwarded-For from requests that did not come from one of our proxies (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_X_FORWARDED_FOR" in request.META and not from_trusted_proxy(request):
            del request.META["HTTP_X_FORWARDED_FOR"]
        return self.get_response(request)
