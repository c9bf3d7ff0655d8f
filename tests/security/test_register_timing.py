"""Issue 11 #11: /register told taken addresses from new ones by its answer time.

The page is the same either way (allauth's enumeration prevention), but a new address cost a password hash and
an SMTP conversation inside the request (0.7-1.0 s) while a taken one answered in 0.1 s. Now both paths hash the
submitted password once, and both hand their e-mail to a Celery job instead of talking to the mail server.

Equal work is shown structurally (hasher calls counted, mail handed to the job, nothing sent inside the request),
plus one coarse check that cannot flake: with a hasher that takes 0.3 s, both answers take at least that long.
"""

import time

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail

from accounts import tasks

NEW_PASSWORD = "a-brand-new-passphrase-42"  # noqa: S105
SLOW_HASH_SECONDS = 0.3

pytestmark = pytest.mark.django_db


class SlowHasher(MD5PasswordHasher):
    """A hasher as slow as a production one, so that skipping it shows in the answer time."""

    algorithm = "slow_md5"

    def encode(self, password, salt):
        time.sleep(SLOW_HASH_SECONDS)
        return super().encode(password, salt).replace("md5$", f"{self.algorithm}$", 1)


def register(client, email: str):
    response = client.post("/register", {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return response


@pytest.fixture
def hashes(monkeypatch):
    """Counts password hashes computed (the test settings' hasher is MD5)."""
    calls = []
    encode = MD5PasswordHasher.encode

    def counting(self, password, salt, *args, **kwargs):
        calls.append(password)
        return encode(self, password, salt, *args, **kwargs)

    monkeypatch.setattr(MD5PasswordHasher, "encode", counting)
    return calls


@pytest.fixture
def queued_mail(monkeypatch):
    """What the request hands to the e-mail job, captured instead of sent (as a worker would later)."""
    queued = []
    monkeypatch.setattr(tasks.email_send, "apply_async", lambda args=None, **options: queued.append(args[0]))
    return queued


def test_a_taken_address_costs_the_same_password_hash_as_a_new_one(client, alice, hashes):
    register(client, "dana@example.org")
    for_new = len(hashes)
    hashes.clear()

    register(client, alice.email)

    assert for_new == 1
    assert hashes == [NEW_PASSWORD]


def test_both_paths_hand_their_mail_to_a_job_and_send_nothing_inside_the_request(client, alice, queued_mail):
    register(client, "dana@example.org")
    register(client, alice.email)

    assert mail.outbox == []
    assert [message["to"] for message in queued_mail] == [["dana@example.org"], [alice.email]]
    assert "confirm" in queued_mail[0]["subject"].lower()
    assert "already" in queued_mail[1]["body"]


def test_the_job_sends_what_the_request_rendered(client, alice):
    # Celery runs eagerly in the test settings: the same job a worker runs, sending through the e-mail backend.
    register(client, alice.email)

    (message,) = mail.outbox
    assert message.to == [alice.email]
    assert message.subject.startswith("[DeepMed]")
    assert "already" in message.body
    assert message.alternatives == [] or message.alternatives[0][1] == "text/html"


def test_the_mail_is_sent_in_the_request_when_the_queue_is_away(client, alice, monkeypatch):
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.email_send, "apply_async", broker_down)

    register(client, alice.email)

    assert [message.to for message in mail.outbox] == [[alice.email]]


def test_with_a_production_speed_hasher_neither_answer_skips_the_hash(client, settings, alice):
    settings.PASSWORD_HASHERS = [f"{__name__}.SlowHasher"]
    durations = {}
    for label, email in (("new", "dana@example.org"), ("taken", alice.email)):
        started = time.perf_counter()
        register(client, email)
        durations[label] = time.perf_counter() - started

    assert durations["new"] >= SLOW_HASH_SECONDS
    assert durations["taken"] >= SLOW_HASH_SECONDS
