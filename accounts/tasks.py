"""Celery jobs of accounts. E-mails leave the request: talking to the mail server inside /register made a new
address answer a second later than a taken one (account enumeration by timing), and a slow server held a web worker.
"""

from celery import shared_task

from . import services


# OSError covers smtplib's errors and refused connections: the mail server may be back in a minute.
@shared_task(name="accounts.tasks.email_send", autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def email_send(payload: dict) -> None:
    """Send one e-mail rendered by the request (accounts.services.email_send_later)."""
    services.email_send(payload=payload)
