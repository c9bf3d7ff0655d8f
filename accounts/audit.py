"""Writing to the append-only audit log. Every app records security-relevant actions through `audit_record`."""

import logging

from django.db import models

from deepmed.client_ip import client_ip as trusted_client_ip
from deepmed.logging import request_id_var

from .models import AuditEvent

logger = logging.getLogger("deepmed.audit")


def client_ip(request) -> str | None:
    """The client's address by the platform's one rule (TRUSTED_PROXY_COUNT): behind nginx, not nginx's own."""
    if request is None:
        return None
    return trusted_client_ip(request) or None


def audit_record(
    *,
    action: str,
    request=None,
    actor=None,
    actor_email: str = "",
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    details: dict | None = None,
) -> AuditEvent:
    """Append one event. `actor` defaults to the request's authenticated user."""
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    if actor is not None and not actor_email:
        actor_email = actor.email
    target_repr = ""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        target_repr = str(target)[:255]
    event = AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_email=actor_email[:254],
        target_type=target_type,
        target_id=str(target_id),
        target_repr=target_repr,
        ip_address=client_ip(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:512],
        request_id=request_id_var.get() if request_id_var.get() != "-" else "",
        details=details or {},
    )
    logger.info("audit %s actor=%s target=%s:%s", action, actor.pk if actor else "-", target_type, target_id)
    return event
