"""schemathesis against every operation of /api/schema/, served by gunicorn as in production, with JWT auth.

    .venv/bin/python benchmarks/api_fuzz.py [--max-examples 25] [--phases examples,coverage,fuzzing,stateful]
                                            [--workers 2] [--seed N] [--keep]

What it does, all under one temporary folder (removed at the end unless --keep):
- a throwaway SQLite database and MEDIA_ROOT, `migrate`, DEBUG=0 with a SECRET_KEY and ALLOWED_HOSTS, no TLS
  redirect, Celery eager (training runs inline, no worker needed);
- alice (an ordinary user) owns real objects, so id-taking operations hit them too: a tabular dataset, its
  cleaning plan, a finished training run with a trained logistic regression, a conversation with one answer;
  bob is staff (the staff-only operations are fuzzed as him in a second pass);
- gunicorn with 2 workers on a free local port;
- four `schemathesis run` passes, all checks, the token fetched and renewed on a 401 by schemathesis itself from
  /api/v1/auth/token/ (a force logout or an expired token cannot silence a pass):
  1. real-objects: each `{id}` path parameter pinned to one of alice's objects (random ids mostly miss), first,
     while they exist;
  2. all-operations: every operation of the schema (the /api/v1 ones and the other JSON routes it lists:
     /api/predict_tabular, /chat/*, /force_logout, ...) as alice, examples, coverage, fuzzing and stateful phases;
  3. staff: the staff-only operations as bob;
  4. token-endpoint: /api/v1/auth/token/ itself, last, since its failed logins trip the per-address login limit.

The API's throttles are raised through their settings (API_THROTTLE_USER, API_THROTTLE_ANON, API_THROTTLE_TOKEN,
CHAT_THROTTLE_RATE) so 429s do not hide what the operations do; the run says so. It prints the operations and
test cases run, every 5xx (operation, status, a curl reproduction) and the other check failures grouped by check,
and exits 1 on any 5xx (2 when the harness itself failed).

Measured on this machine (2 shared cores, defaults: 25 examples, all phases): 66 operations, about 5,400 test
cases, 107 s wall (seeding with a training run included). Before the fixes it found 5xx on POST /api/predict_tabular
(a JSON body that is not an object; an empty CSV upload) and POST /api/v1/imaging/pipeline/validate (scalar
`steps`); after them, 0 5xx. The check failures left are the schema's looseness (an arbitrary file or string is
"schema-valid" where the API needs a ZIP, a CSV or one of a few preset names), not wrong answers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PASSWORD = "fuzz-correct-horse-battery-staple"  # noqa: S105 - a throwaway user in a throwaway database
ALICE = "alice@example.org"
BOB = "bob@example.org"
STAFF_PATHS = r"^/(check_downloads_dir|force_logout|api/v1/knowledge/documents/.*)$"
# gunicorn's access log line (see --access-logformat below): method, path, status, seconds, query.
ACCESS_5XX = re.compile(r"^([A-Z]+ \S+) 5\d\d ")
NOISY_HEADERS = {"user-agent", "accept-encoding", "accept", "connection", "content-length", "x-schemathesis-testcaseid"}
RAISED_THROTTLES = {
    "API_THROTTLE_USER": "1000000/min",
    "API_THROTTLE_ANON": "1000000/min",
    "API_THROTTLE_TOKEN": "1000000/min",
    "CHAT_THROTTLE_RATE": "1000000/min",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_environment(workdir: Path) -> dict[str, str]:
    """Production settings (DEBUG=0, whitenoise manifest, JWT) on throwaway storage, minus TLS and throttles."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="deepmed.settings",
        DEBUG="0",
        SECRET_KEY="api-fuzz-" + os.urandom(16).hex(),
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="0",
        CELERY_TASK_ALWAYS_EAGER="1",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        VAR_DIR=str(workdir / "var"),
        MEDIA_ROOT=str(workdir / "media"),
        STATIC_ROOT=str(workdir / "static"),
        DATABASE_URL=f"sqlite:///{workdir / 'fuzz.sqlite3'}",
        # One cache for both gunicorn workers: lockouts and rate limits behave as in production.
        CACHE_URL=f"filecache://{workdir / 'cache'}",
        JWT_ACCESS_MINUTES="240",
        # schemathesis fetches bob's token with his password alone (it cannot type a changing code); with the
        # requirement on, the staff pass would only ever see 403 mfa_required (tests/security/test_staff_mfa.py).
        MFA_REQUIRED_FOR_STAFF="0",
        HF_HUB_OFFLINE="1",
        LOG_LEVEL="WARNING",
        **RAISED_THROTTLES,
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def _expect(response, *codes) -> dict:
    if response.status_code not in codes:
        path = response.request["PATH_INFO"]
        raise SystemExit(f"seeding failed: {path} -> {response.status_code} {response.content[:500]!r}")
    return response.json()


def seed_objects() -> dict:
    """Run in a child process with the app's environment: the users, and alice's objects made through the API."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    import pandas as pd
    from allauth.account.models import EmailAddress
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from accounts.models import User

    users = {}
    for email, staff in ((ALICE, False), (BOB, True)):
        user = User.objects.create_user(email=email, password=PASSWORD, is_staff=staff, first_name=email[:5])
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        users[email] = user
    client = APIClient()
    client.force_authenticate(users[ALICE])

    n_rows = 120
    frame = pd.DataFrame(
        {
            "record_id": [f"R{index:04d}" for index in range(n_rows)],
            "age": [40 + (index * 7) % 35 for index in range(n_rows)],
            "bmi": [None if index % 9 == 0 else 20 + (index * 3) % 15 + 0.5 for index in range(n_rows)],
            "smoker": ["yes" if index % 3 == 0 else "no" for index in range(n_rows)],
            "outcome": ["sick" if (index * 7) % 35 > 20 or index % 5 == 0 else "well" for index in range(n_rows)],
        }
    )
    upload = SimpleUploadedFile("patients.csv", frame.to_csv(index=False).encode(), content_type="text/csv")
    dataset = _expect(client.post("/api/v1/datasets/", {"file": upload, "name": "fuzz patients"}), 201)
    plan = _expect(
        client.post(f"/api/v1/datasets/{dataset['id']}/cleaning-plan/", {"target": "outcome"}, format="json"), 201
    )
    training = {"dataset": dataset["id"], "target": "outcome", "models": ["logistic_regression"], "level": 1}
    run = _expect(client.post("/api/v1/training-runs/", {**training, "cv_folds": 3}, format="json"), 202)
    run = _expect(client.get(f"/api/v1/training-runs/{run['id']}/"), 200)  # eager Celery: already finished
    if run["status"] != "succeeded" or not run["models"]:
        raise SystemExit(f"seeding failed: the training run ended {run['status']}: {run.get('error')}")
    conversation = _expect(client.post("/chat/start", {}, format="json"), 200, 201)["conversation_id"]
    question = {"conversation_id": conversation, "message": "How do I train a model on my CSV?"}
    message = _expect(client.post("/chat/message", question, format="json"), 200)
    return {
        "dataset": dataset["id"],
        "cleaning_plan": plan["id"],
        "training_run": run["id"],
        "model": run["models"][0]["id"],
        "conversation": conversation,
        "message": message["message_id"],
    }


def seed(env: dict[str, str]) -> dict:
    """alice's objects, made through the API itself (in-process), so they are exactly what a user would have."""
    result = subprocess.run(  # noqa: S603
        [str(BIN / "python"), __file__, "--seed-objects"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, log: Path):
    with log.open("w") as log_file:
        process = subprocess.Popen(  # noqa: S603
            [
                str(BIN / "gunicorn"),
                "deepmed.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--timeout",
                "300",
                # gunicorn 27's control socket has one default path per user: it would collide with another server.
                "--no-control-socket",
                "--access-logfile",
                "-",
                "--access-logformat",
                '%(m)s %(U)s %(s)s %(L)ss "%(q)s"',
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"gunicorn did not start; see {log}") from None
                    time.sleep(0.3)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def schemathesis_config(path: Path, *, email: str, objects: dict | None) -> Path:
    """The config file: JWT fetched (and re-fetched on 401) by schemathesis; optionally ids pinned to real objects."""
    lines = [
        "[auth.dynamic.openapi.jwtAuth]",
        'path = "/api/v1/auth/token/"',
        f'payload = {{ email = "{email}", password = "{PASSWORD}" }}',
        'extract_selector = "/access"',
        "",
    ]
    if objects:
        pinned = {
            r"^/api/v1/datasets/\{id\}/.*$": objects["dataset"],
            r"^/api/v1/cleaning-plans/\{id\}/.*$": objects["cleaning_plan"],
            r"^/api/v1/training-runs/\{id\}/.*$": objects["training_run"],
            r"^/api/v1/models/\{id\}/.*$": objects["model"],
        }
        for pattern, value in pinned.items():
            lines += ["[[operations]]", f"include-path-regex = '{pattern}'", f"parameters = {{ id = {value} }}", ""]
    path.write_text("\n".join(lines))
    return path


def run_schemathesis(
    *, label: str, base: str, config: Path, report_dir: Path, args: argparse.Namespace, filters: list[str]
) -> Path:
    ndjson = report_dir / f"{label}.ndjson"
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{base}/api/schema/?format=json",
        "--checks",
        "all",
        "--phases",
        args.phases,
        "--max-examples",
        str(args.max_examples),
        "--workers",
        str(args.workers),
        "--request-timeout",
        "120",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--report",
        "ndjson,json",
        "--report-ndjson-path",
        str(ndjson),
        "--report-json-path",
        str(report_dir / f"{label}.json"),
        "--output-truncate",
        "true",
        *filters,
    ]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    print(f"\n==== pass {label}: schemathesis {' '.join(command[command.index('run') :])}", flush=True)
    with (report_dir / f"{label}.log").open("w") as log:
        # Its crash cache (.schemathesis/) lands in the working folder: the temporary one, not the checkout.
        subprocess.run(command, cwd=report_dir, stdout=log, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    return report_dir / f"{label}.json"


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def server_errors(ndjson: Path, base: str) -> list[dict]:
    """Every response with a 5xx status in the run's events, with the request that caused it."""
    found = []
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        for node in _walk(event):
            response, request = node.get("response"), node.get("request")
            if not (isinstance(response, dict) and isinstance(request, dict)):
                continue
            status = response.get("status_code")
            if isinstance(status, int) and status >= 500:
                found.append({"request": request, "response": response})
    return found


def curl(request: dict) -> str:
    parts = ["curl", "-X", request.get("method", "GET")]
    for name, values in (request.get("headers") or {}).items():
        if name.lower() in {
            "user-agent",
            "accept-encoding",
            "connection",
            "content-length",
            "x-schemathesis-testcaseid",
        }:
            continue
        for value in values if isinstance(values, list) else [values]:
            if name.lower() == "authorization":
                value = "Bearer $TOKEN"
            parts += ["-H", f"'{name}: {value}'"]
    body = request.get("body")
    if isinstance(body, dict) and "$base64" in body:
        import base64

        body = base64.b64decode(body["$base64"]).decode("utf-8", "replace")
    if body:
        parts += ["--data-binary", "'" + str(body).replace("'", "'\\''")[:800] + "'"]
    parts.append(f"'{request.get('uri')}'")
    return " ".join(parts)


def summarise(label: str, report: Path, ndjson: Path, base: str) -> tuple[int, int, list[dict], dict]:
    """One pass's line; returns the schema's operation count, test cases, 5xx interactions, failures by check."""
    data = json.loads(report.read_text())
    operations = data.get("operations") or {}
    cases = data["test_cases"]["generated"]
    failures = {group["title"]: (group["count"], group["operations"]) for group in data["failures"]}
    errors = server_errors(ndjson, base) if ndjson.exists() else []
    print(
        f"pass {label}: {operations.get('tested', 0)} of {operations.get('selected', 0)} operations tested, "
        f"{cases} test cases, {len(errors)} 5xx responses, {data['running_time']:.0f} s, stop reason "
        f"{data['stop_reason']}"
    )
    for error in data.get("errors") or []:
        print(f"   harness error: {error['title']} x{error['count']}")
    return operations.get("total", 0), cases, errors, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=25, help="test cases per operation and phase")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--workers", type=int, default=2, help="schemathesis threads (gunicorn has 2 workers)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, reports, database)")
    parser.add_argument("--seed-objects", action="store_true", help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.seed_objects:
        print(json.dumps(seed_objects()))
        return 0

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="deepmed-api-fuzz-"))
    env = app_environment(workdir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    reports = workdir / "reports"
    reports.mkdir()
    try:
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        objects = seed(env)
        print(f"seeded alice's objects: {objects}")
        print(
            "throttles raised for the run so 429s do not hide results: "
            + ", ".join(f"{key}={value}" for key, value in RAISED_THROTTLES.items())
        )
        passes = [
            # label, config, filters
            # First, while alice's objects exist: the fuzzing passes DELETE whatever ids they hit, id 1 included.
            (
                "real-objects",
                schemathesis_config(workdir / "alice-pinned.toml", email=ALICE, objects=objects),
                ["--include-path-regex", r"\{id\}", "--exclude-method", "DELETE", "--phases", "examples,fuzzing"],
            ),
            (
                "all-operations",
                schemathesis_config(workdir / "alice.toml", email=ALICE, objects=None),
                ["--exclude-operation-id", "auth_token_obtain"],
            ),
            (
                "staff",
                schemathesis_config(workdir / "bob.toml", email=BOB, objects=None),
                ["--include-path-regex", STAFF_PATHS],
            ),
            # Last: its failed logins trip the per-address login rate limit (allauth's login_failed, 10/m/ip), after
            # which no pass could fetch a token for a few minutes.
            (
                "token-endpoint",
                schemathesis_config(workdir / "alice.toml", email=ALICE, objects=None),
                ["--include-operation-id", "auth_token_obtain"],
            ),
        ]
        totals = {"operations": 0, "cases": 0}
        all_errors: list[tuple[str, dict]] = []
        all_failures: dict[str, list] = defaultdict(lambda: [0, set()])
        with gunicorn(env, port, workdir / "gunicorn.log"):
            for label, config, filters in passes:
                # A later --phases overrides the default one: click keeps the last value.
                report = run_schemathesis(
                    label=label, base=base, config=config, report_dir=reports, args=args, filters=filters
                )
                if not report.exists():
                    print(f"!! schemathesis wrote no report; its output:\n{(reports / f'{label}.log').read_text()}")
                    return 2
                total, cases, errors, failures = summarise(label, report, reports / f"{label}.ndjson", base)
                totals["operations"] = max(totals["operations"], total)
                totals["cases"] += cases
                all_errors += [(label, error) for error in errors]
                for title, (count, operations) in failures.items():
                    all_failures[title][0] += count
                    all_failures[title][1].update(operations)

        print(f"\n==== {totals['operations']} operations in the schema; {totals['cases']} test cases in all passes")
        seen = set()
        unique_errors = []
        for label, error in all_errors:
            request, response = error["request"], error["response"]
            key = (request.get("method"), re.sub(r"\d+", "N", request.get("uri", "").split("?")[0]))
            if key in seen:
                continue
            seen.add(key)
            unique_errors.append((label, error))
        access_log_5xx = [
            line for line in (workdir / "gunicorn.log").read_text().splitlines() if ACCESS_5XX.match(line)
        ]
        print(
            f"5xx responses: {len(access_log_5xx)} in gunicorn's access log; {len(all_errors)} reported by "
            f"schemathesis ({len(unique_errors)} distinct method + path)"
        )
        for route, count in sorted(Counter(ACCESS_5XX.match(line)[1] for line in access_log_5xx).items()):
            print(f"  access log: {route} x{count}")
        for label, error in unique_errors:
            request, response = error["request"], error["response"]
            print(f"  [{label}] {request.get('method')} {request.get('uri')} -> {response.get('status_code')}")
            print(f"      {curl(request)}")
        print("other check failures, by check (unique failures; operations):")
        for title, (count, operations) in sorted(all_failures.items()):
            if title == "Server error":
                continue
            print(f"  {title}: {count}")
            for operation in sorted(operations):
                print(f"      {operation}")
        print(f"wall time {time.perf_counter() - started:.0f} s; reports in {reports if args.keep else '(removed)'}")
        return 1 if all_errors or access_log_5xx else 0
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
