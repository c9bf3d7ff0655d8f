"""Load test of the production shape: Locust's mixed clinician traffic over HTTPS through nginx (issue 7, "Load").

    .venv/bin/python benchmarks/load_prod.py [--users 50] [--spawn-rate 10] [--duration 120] [--accounts 5]

What it does:
- starts the production shape (scripts/prod_shape.py: nginx+TLS, gunicorn with 3 sync workers, two Celery workers
  and beat on Redis, its own MariaDB, PostgreSQL+pgvector with the user guide loaded as the knowledge base) in
  var/load-prod, with the per-user and per-address throttles raised (printed): at their production rates 50
  simulated users on a handful of accounts, all from 127.0.0.1, would mostly measure 429s, which the throttles
  answer by design;
- seeds `--accounts` clinicians with `manage.py shell` against the shape's database (verified e-mail addresses;
  not through /register, which is rate limited) and, per account, uploads a 300-row breast cancer CSV and trains one
  logistic regression (level 1, 3 folds) through the API on the shape's real workers;
- logs each account in once through the /login form (its Locust users share that session for the pages: behind
  nginx every login comes from one address, and allauth's per-address login limit of 30/min is not a setting);
- runs `locust --headless` (benchmarks/locustfile.py) for `--duration` seconds: browse (models, datasets, a training
  run, /my_models, /dashboard), predict (1-5 rows) and chat (/chat/start once, then /chat/message), while it samples
  the machine's load average;
- prints per route: requests, req/s, p50/p95/p99 (ms), failures and 5xx (counted from every answer's status in the
  Locust process, and cross-checked against nginx's access log), the total throughput and the load average; keeps
  Locust's CSVs in var/load/ and exits 1 on any 5xx (2 when the harness itself failed). The shape is always stopped.

Measured on this machine (2 cores shared with other engineers' tests), defaults (50 users, 10/s spawn, 120 s,
5 accounts), 3 gunicorn sync workers:

- First run (load average 5.4-8.0): 557 requests, 4.6 req/s, 0 failures, 0 5xx. Client p50/p95/p99 8.2/17/19 s,
  all queueing behind chat/message, which took 3.6 s (p95 6.3 s) inside Django and 74% of the workers' busy time:
  the extractive generator embedded every retrieved sentence per question, with 2 torch threads per web worker.
- After the sentence-vector cache (chatbot/rag/embedding.py) and one torch thread per web worker
  (TORCH_NUM_THREADS, deepmed/torch_threads.py), load average 4.1-4.6: 2,641 requests, 22.1 req/s, 0 failures,
  0 5xx (Locust and nginx agree). Client p50/p95/p99 55/1300/7900 ms over all routes; chat/message 80/1200/6000 ms
  (71/202/1706 ms inside Django; the slow tail is the first messages while caches are cold); predict 96/790/4200 ms;
  browse routes p50 21-26 ms; token p50 1.3 s (the password hash, by design).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from prod_shape import ProdShape  # noqa: E402

from tests.prod.helpers import breast_cancer_csv  # noqa: E402

OUT_DIR = ROOT / "var" / "load"
SHAPE_DIR = ROOT / "var" / "load-prod"
LOCUSTFILE = ROOT / "benchmarks" / "locustfile.py"
RAISED_THROTTLES = {
    "API_THROTTLE_USER": "1000000/min",
    "API_THROTTLE_TOKEN": "1000000/min",
    "CHAT_THROTTLE_RATE": "1000000/min",
}
TRAINING_SECONDS = 600
# nginx's default "combined" log line: ... "GET /path HTTP/1.1" 200 ...
NGINX_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ')

SEED_CODE = """
import json
from allauth.account.models import EmailAddress
from accounts.models import User
accounts = json.loads({payload!r})
ids = []
for account in accounts:
    user = User.objects.create_user(email=account["email"], password=account["password"], first_name="Load")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    ids.append(user.id)
print(json.dumps(ids))
"""


def log(message: str) -> None:
    print(f"load: {message}", flush=True)


def seed_accounts(shape: ProdShape, count: int) -> list[dict]:
    """`count` verified clinicians created in the shape's database; each then trains one model through the API."""
    accounts = [
        {"email": f"load-{i}-{secrets.token_hex(3)}@hospital.example", "password": f"Load-{secrets.token_urlsafe(12)}"}
        for i in range(count)
    ]
    payload = json.dumps([{"email": a["email"], "password": a["password"]} for a in accounts])
    ids = shape.django_json(SEED_CODE.format(payload=payload))
    for account, user_id in zip(accounts, ids, strict=True):
        account["user_id"] = user_id

    csv_bytes = breast_cancer_csv()
    rows = example_rows()
    started = time.monotonic()
    for account in accounts:
        client = shape.session()
        account["cookies"] = session_login(shape, client, account)
        client.headers.update(shape.auth_headers(account))
        account["client"] = client
        upload = client.post(
            shape.url("/api/v1/datasets/"),
            files={"file": ("breast_cancer.csv", csv_bytes, "text/csv")},
            data={"name": "Breast cancer (load test)"},
            timeout=60,
        )
        if upload.status_code != 201:
            raise RuntimeError(f"upload refused for {account['email']}: {upload.status_code} {upload.text}")
        account["dataset_id"] = upload.json()["id"]
        run = client.post(
            shape.url("/api/v1/training-runs/"),
            json={
                "dataset": account["dataset_id"],
                "target": "diagnosis",
                "models": ["logistic_regression"],
                "level": 1,
                "cv_folds": 3,
                "run_name": "load test",
            },  # fmt: skip
            timeout=60,
        )
        if run.status_code != 202:
            raise RuntimeError(f"training refused for {account['email']}: {run.status_code} {run.text}")
        account["run_id"] = run.json()["id"]
    for account in accounts:  # the runs share the two workers' tabular queue: wait for all of them
        body = wait_for_run(shape, account["client"], account["run_id"], started)
        if body["status"] != "succeeded" or len(body["models"]) != 1:
            raise RuntimeError(f"training run {account['run_id']} did not succeed: {body}")
        account["model_id"] = body["models"][0]["id"]
        account["rows"] = rows
        account.pop("client").close()
    log(f"{count} accounts seeded; {count} datasets uploaded and models trained in {time.monotonic() - started:.0f} s")
    return accounts


def session_login(shape: ProdShape, client, account: dict) -> dict[str, str]:
    """Log `account` in through the /login form once; its session cookies, shared by that account's Locust users.

    Once per account, not per simulated user: every request reaches Django from nginx's address, so allauth's own
    per-address login limit (30/min, not a setting here) would refuse most of 50 logins within the ramp-up.
    """
    login_url = shape.url("/login")
    page = client.get(login_url, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if page.status_code != 200 or not token:
        raise RuntimeError(f"no login form at {login_url}: {page.status_code}")
    response = client.post(
        login_url,
        data={"csrfmiddlewaretoken": token.group(1), "login": account["email"], "password": account["password"]},
        headers={"Referer": login_url},
        timeout=30,
    )
    if response.status_code != 200 or "/login" in response.url:
        raise RuntimeError(f"session login refused for {account['email']}: {response.status_code} at {response.url}")
    return client.cookies.get_dict()


def wait_for_run(shape: ProdShape, client, run_id: int, started: float) -> dict:
    body: dict = {}
    while time.monotonic() - started < TRAINING_SECONDS:
        response = client.get(shape.url(f"/api/v1/training-runs/{run_id}/"), timeout=30)
        if response.status_code == 200:
            body = response.json()
            if body["status"] in ("succeeded", "failed", "stopped"):
                return body
        time.sleep(1)
    raise RuntimeError(f"training run {run_id} not finished after {TRAINING_SECONDS} s: {body}")


def example_rows(count: int = 40) -> list[dict]:
    """Prediction rows: cases of the breast cancer data (features only), as a clinician's form would send them."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target").sample(n=count, random_state=1)
    return [{column: float(value) for column, value in row.items()} for _, row in frame.iterrows()]


class LoadSampler(threading.Thread):
    """The machine's 1-minute load average every few seconds while Locust runs."""

    def __init__(self, every_s: float = 5.0):
        super().__init__(daemon=True)
        self.every_s, self.samples, self.done = every_s, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            self.samples.append(os.getloadavg()[0])


def run_locust(shape: ProdShape, accounts: list[dict], args) -> tuple[int, dict, LoadSampler, float]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    config = OUT_DIR / "config.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps({"base_url": shape.base_url, "cert": str(shape.cert_path), "accounts": accounts}))
    status_path = OUT_DIR / "status_codes.json"
    status_path.unlink(missing_ok=True)
    prefix = OUT_DIR / "run"
    command = [
        str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless",
        "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s",
        "--host", shape.base_url, "--csv", str(prefix), "--stop-timeout", "30", "--only-summary",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "LOAD_PROD_CONFIG": str(config), "LOAD_PROD_STATUS": str(status_path)}
    log(f"locust: {args.users} users, {args.spawn_rate}/s spawn, {args.duration} s against {shape.base_url}")
    sampler = LoadSampler()
    sampler.samples.append(os.getloadavg()[0])
    sampler.start()
    started = time.monotonic()
    with open(OUT_DIR / "locust.log", "w") as locust_log:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=locust_log, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    sampler.samples.append(os.getloadavg()[0])
    codes = json.loads(status_path.read_text()) if status_path.exists() else {}
    return result.returncode, codes, sampler, wall


def nginx_statuses(shape: ProdShape, since_line: int) -> Counter:
    """Status codes nginx answered per "METHOD path" (ids folded to {id}) after line `since_line` of its access log."""
    counts: Counter = Counter()
    path = shape.logs / "nginx-access.log"
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines()[since_line:]:
        match = NGINX_LINE.search(line)
        if match:
            method, url, status = match.groups()
            route = re.sub(r"/\d+/", "/{id}/", url.split("?")[0])
            counts[(f"{method} {route}", status)] += 1
    return counts


def line_count(path: Path) -> int:
    return len(path.read_text(errors="replace").splitlines()) if path.exists() else 0


def report(codes: dict, nginx: Counter, sampler: LoadSampler, wall: float, args) -> int:
    """Print the per-route table; return the number of 5xx answers."""
    with open(OUT_DIR / "run_stats.csv") as stats_file:
        stats = list(csv.DictReader(stats_file))
    columns = ("requests", 8), ("req/s", 7), ("p50 ms", 7), ("p95 ms", 7), ("p99 ms", 7), ("fail", 5), ("5xx", 4)
    header = f"{'route':<40} " + " ".join(f"{name:>{width}}" for name, width in columns)
    print("\n" + header + "\n" + "-" * len(header))
    total_5xx = 0
    for row in stats:
        route = "TOTAL" if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
        if route == "TOTAL":
            route_5xx = sum(n for codes_ in codes.values() for code, n in codes_.items() if code.startswith("5"))
            print("-" * len(header))
        else:
            route_5xx = sum(n for code, n in codes.get(route, {}).items() if code.startswith("5"))
            total_5xx += route_5xx
        print(
            f"{route:<40} {row['Request Count']:>8} {float(row['Requests/s']):>7.1f} {row['50%']:>7} "
            f"{row['95%']:>7} {row['99%']:>7} {row['Failure Count']:>5} {route_5xx:>4}"
        )
    print(f"\nstatus codes per route (Locust's side): {json.dumps(codes, sort_keys=True)}")
    nginx_5xx = {f"{route} {status}": n for (route, status), n in sorted(nginx.items()) if status.startswith("5")}
    print(f"nginx access log: {sum(nginx.values())} requests during the run, 5xx: {nginx_5xx or 'none'}")
    samples = sampler.samples
    print(
        f"load average (1 min, {len(samples)} samples, 2 cores shared with other work): "
        f"start {samples[0]:.2f}, mean {sum(samples) / len(samples):.2f}, max {max(samples):.2f}, end {samples[-1]:.2f}"
    )
    print(f"{args.users} users for {args.duration} s (Locust wall {wall:.0f} s); CSVs in {OUT_DIR.relative_to(ROOT)}/")
    # Both sides saw the same answers: the larger count, so a 5xx one side missed still fails the run.
    return max(total_5xx, sum(nginx_5xx.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", type=int, default=120, help="seconds of load")
    parser.add_argument("--accounts", type=int, default=5, help="seeded clinicians the users share")
    args = parser.parse_args()

    print("load: throttles raised for this run (production rates would answer 429 by design): "
          + ", ".join(f"{key}={value}" for key, value in RAISED_THROTTLES.items()), flush=True)  # fmt: skip
    shape = ProdShape(SHAPE_DIR, extra_env=RAISED_THROTTLES)
    try:
        shape.start()
        accounts = seed_accounts(shape, args.accounts)
        access_lines = line_count(shape.logs / "nginx-access.log")
        returncode, codes, sampler, wall = run_locust(shape, accounts, args)
        if not (OUT_DIR / "run_stats.csv").exists():
            log(f"locust exited {returncode} without statistics; see {OUT_DIR / 'locust.log'}")
            return 2
        fives = report(codes, nginx_statuses(shape, access_lines), sampler, wall, args)
        if fives:
            log(f"{fives} answers were 5xx: the end of the logs follows")
            print(shape.log_tails(6000))
            return 1
        log("zero 5xx")
        return 0
    except Exception:
        log("the harness failed; the end of the logs follows")
        print(shape.log_tails())
        raise
    finally:
        shape.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # noqa: BLE001 - exit 2 for the harness, 1 stays "5xx found"
        print(f"load: {exc!r}", file=sys.stderr)
        sys.exit(2)
