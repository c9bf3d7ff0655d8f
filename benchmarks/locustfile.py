"""Locust users for benchmarks/load_prod.py: clinicians browsing, predicting and chatting on the production shape.

Not meant to be started by hand: load_prod.py starts the shape, seeds the accounts and writes the JSON file named by
LOAD_PROD_CONFIG (base URL, certificate, accounts with their trained model and example rows), then runs

    locust -f benchmarks/locustfile.py --headless -u 50 -r 10 -t 120s --csv var/load/run

Each simulated user takes the next seeded account (round robin), gets a JWT pair from /api/v1/auth/token/ and uses
the account's session (logged in once through the /login form by load_prod.py) for the pages, then picks weighted
tasks with 1-3 s of think time:

    browse  (5): GET /api/v1/models/, /api/v1/datasets/, /api/v1/training-runs/{id}/, /my_models, /dashboard
    predict (3): POST /api/predict_tabular with 1-5 rows of the account's data
    chat    (2): POST /chat/message with a medical question (the conversation is started once, /chat/start)

Requests are named by route, so Locust's statistics group by route. Every answer's status code is counted per route
and written to LOAD_PROD_STATUS (JSON) when the test stops: load_prod.py reports 5xx from that, not from Locust's
failure text. A request fails in Locust's statistics when it is not the status the route should answer.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
from collections import defaultdict

from locust import HttpUser, between, events, task

CONFIG = json.loads(open(os.environ["LOAD_PROD_CONFIG"]).read())  # noqa: SIM115, PTH123 - read once at import
STATUS_PATH = os.environ.get("LOAD_PROD_STATUS", "")
QUESTIONS = [
    "How do I train a model on my CSV file?",
    "What does the ROC AUC of a model mean?",
    "How should I handle missing values in patient records?",
    "What is sensitivity and specificity?",
    "How do I predict for new patients with a trained model?",
    "How does the platform protect personal data of patients?",
    "What does class imbalance do to a classifier and how is it handled?",
    "How are confidence intervals of the metrics computed?",
    "Which columns are dropped as identifiers before training?",
    "How do I detect anomalies in medical images?",
]

_accounts = itertools.cycle(range(len(CONFIG["accounts"])))
_accounts_lock = threading.Lock()
status_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


@events.request.add_listener
def count_status(request_type, name, response, exception, **_kwargs):
    """Every answer's status per route (0: no answer at all, e.g. a reset connection)."""
    code = getattr(response, "status_code", None) or 0
    status_counts[f"{request_type} {name}"][str(code)] += 1


@events.quitting.add_listener
def write_status_counts(environment, **_kwargs):
    if STATUS_PATH:
        with open(STATUS_PATH, "w") as out:  # noqa: PTH123
            json.dump({route: dict(codes) for route, codes in status_counts.items()}, out, indent=2, sort_keys=True)


class Clinician(HttpUser):
    """One clinician: a seeded account with a trained tabular model, signed in with JWT and a session."""

    wait_time = between(1, 3)
    host = CONFIG["base_url"]

    def on_start(self):
        self.client.verify = CONFIG["cert"]
        self.client.trust_env = False  # 127.0.0.1: no proxy from the environment
        with _accounts_lock:
            self.account = CONFIG["accounts"][next(_accounts)]
        self.bearer = {}
        self.conversation_id = None
        self.jwt_login()
        # The account's session from load_prod.py's one form login (per-address login limits: see there).
        self.client.cookies.update(self.account["cookies"])
        with self.client.post(
            "/chat/start", json={}, headers=self.bearer, name="/chat/start", catch_response=True
        ) as response:
            if expect(response, 200, 201):
                self.conversation_id = response.json()["conversation_id"]

    def jwt_login(self):
        with self.client.post(
            "/api/v1/auth/token/",
            json={"email": self.account["email"], "password": self.account["password"]},
            name="/api/v1/auth/token/",
            catch_response=True,
        ) as response:
            if expect(response, 200):
                self.bearer = {"Authorization": f"Bearer {response.json()['access']}"}

    # ------------------------------------------------------------------ browse
    @task(2)
    def models_list(self):
        self.get_json("/api/v1/models/", name="/api/v1/models/")

    @task(1)
    def datasets_list(self):
        self.get_json("/api/v1/datasets/", name="/api/v1/datasets/")

    @task(1)
    def training_run(self):
        self.get_json(f"/api/v1/training-runs/{self.account['run_id']}/", name="/api/v1/training-runs/{id}/")

    @task(1)
    def my_models_page(self):
        self.get_page("/my_models")

    @task(1)
    def dashboard_page(self):
        self.get_page("/dashboard")

    # ------------------------------------------------------------------ predict
    @task(3)
    def predict(self):
        rows = random.sample(self.account["rows"], random.randint(1, 5))  # noqa: S311 - traffic mix, not crypto
        with self.client.post(
            "/api/predict_tabular",
            json={"model_id": self.account["model_id"], "rows": rows},
            headers=self.bearer,
            name="/api/predict_tabular",
            catch_response=True,
        ) as response:
            if expect(response, 200) and len(response.json().get("predictions", [])) != len(rows):
                response.failure(f"{len(rows)} rows sent, {len(response.json().get('predictions', []))} predictions")

    # ------------------------------------------------------------------ chat
    @task(2)
    def chat(self):
        if self.conversation_id is None:
            return
        with self.client.post(
            "/chat/message",
            json={"conversation_id": self.conversation_id, "message": random.choice(QUESTIONS)},  # noqa: S311
            headers=self.bearer,
            name="/chat/message",
            catch_response=True,
        ) as response:
            if expect(response, 200) and not response.json().get("answer", "").strip():
                response.failure("empty answer")

    # ------------------------------------------------------------------ helpers
    def get_json(self, path, *, name):
        with self.client.get(path, headers=self.bearer, name=name, catch_response=True) as response:
            expect(response, 200)

    def get_page(self, path):
        with self.client.get(path, name=path, catch_response=True, allow_redirects=False) as response:
            # A redirect here would be to /login: the session is gone.
            if expect(response, 200) and "<html" not in response.text[:500].lower():
                response.failure("not an HTML page")


def expect(response, *statuses) -> bool:
    """Mark the response a failure unless its status is one of `statuses`; True when it is."""
    if response.status_code in statuses:
        response.success()
        return True
    detail = response.text[:200].replace("\n", " ") if response.text else ""
    response.failure(f"HTTP {response.status_code}: {detail}")
    return False
