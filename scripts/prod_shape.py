#!/usr/bin/env python3
"""The production shape of DeepMed on this machine, without containers: what `make test-prod` tests.

    python scripts/prod_shape.py start    # start everything, print the URLs; it keeps running in the background
    python scripts/prod_shape.py status   # which processes are alive
    python scripts/prod_shape.py stop     # stop everything this script started (also after a crash of the tests)

Processes, each on a free port of 127.0.0.1 and all under one folder (var/prod, or PROD_SHAPE_DIR):

    nginx (TLS, self-signed certificate)  ->  gunicorn (3 sync workers, docker/gunicorn.conf.py)
    Celery worker A (default, tabular, chatbot) and worker B (imaging, tabular), one process each; Celery beat
    MariaDB (main database, its own instance)  Redis (broker db 0, cache db 1)  PostgreSQL 18 + pgvector (vectors)

Django runs with the production settings: DEBUG=0, a random SECRET_KEY, HTTPS behind a proxy, JSON logs, mandatory
e-mail verification with the e-mails written to files (mail/). Nothing here touches the test suite's var/ folders
or the machine's shared MariaDB: the drills in tests/prod stop and start these servers at will.

From Python (tests/prod, the load benchmark):

    from scripts.prod_shape import ProdShape

    with ProdShape() as shape:                      # starts, and always stops, even on an exception
        shape.base_url                              # https://127.0.0.1:<port>
        shape.cert_path                             # pass as requests' verify=
        user = shape.register_user()                # a new user through /register and the e-mailed link
        headers = shape.auth_headers(user)          # {"Authorization": "Bearer <access>"}
        shape.log_tails()                           # the end of every process's log, for a failure report
"""

from __future__ import annotations

import argparse
import contextlib
import email
import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = Path(os.environ.get("PROD_SHAPE_DIR", ROOT / "var" / "prod")).resolve()
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
NGINX_TEMPLATE = ROOT / "docker" / "nginx" / "templates" / "deepmed.conf.template"
GUNICORN_CONFIG = ROOT / "docker" / "gunicorn.conf.py"
DATABASE_NAME = "deepmed"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 20
WORKER_QUEUES = {"worker-a": "default,tabular,chatbot", "worker-b": "imaging,tabular"}


def log(message: str) -> None:
    print(f"prod-shape: {message}", file=sys.stderr, flush=True)


def binary(name: str) -> str:
    """The absolute path of a system program the shape needs, or a message saying which Debian package has it."""
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        packages = {"nginx": "nginx-light", "redis-server": "redis-server", "openssl": "openssl"}
        raise RuntimeError(f"{name} is missing: apt-get install {packages.get(name, 'mariadb-server')}")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, predicate, *, seconds: float = START_TIMEOUT_S, interval: float = 0.25, service=None):
    """Poll until predicate() is truthy; fail naming `what` (and showing the service's log) when time runs out."""
    deadline = time.monotonic() + seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(f"{what}: {service.name} exited with {service.returncode()}:\n{service.tail()}")
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not up yet; remembered for the failure message
            last_error = exc
        time.sleep(interval)
    tail = f"\n{service.tail()}" if service is not None else ""
    raise TimeoutError(f"{what} not ready after {seconds:.0f} s (last error: {last_error!r}){tail}")


class NginxTemplate(string.Template):
    """${UPPER_CASE} placeholders only, as envsubst sees them; nginx's own $variables pass through untouched."""

    pattern = r"""
    \$(?:
      (?P<escaped>(?!))                       |
      (?P<named>(?!))                         |
      \{(?P<braced>[A-Z][A-Z0-9_]*)\}         |
      (?P<invalid>(?!))
    )
    """


def render_nginx_template(values: dict[str, object], template: Path = NGINX_TEMPLATE) -> str:
    """The template with every placeholder filled; a placeholder without a value raises KeyError."""
    return NginxTemplate(template.read_text()).substitute({key: str(value) for key, value in values.items()})


@dataclass
class Service:
    """One long-running process in its own session (so a signal reaches it and its children only)."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path = ROOT
    pid: int | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.env is None:
            # Marks the process as ours for `stop` after a crash (redis-server rewrites its command line).
            self.env = {**os.environ, "DEEPMED_PROD_SHAPE_DIR": str(self.log_path.parent.parent)}
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n==== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(  # noqa: S603 - fixed command lines built here
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.process.pid
        return self

    def alive(self) -> bool:
        if self.pid is None:
            return False
        if self.process is not None:
            return self.process.poll() is None
        try:  # started by another process (the CLI): no Popen to ask
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        with contextlib.suppress(OSError):  # a zombie is not alive
            return Path(f"/proc/{self.pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
        return True

    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def signal(self, sig: int) -> None:
        """Send `sig` to the process and everything it started (its session's process group)."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.pid is None:
            return
        if self.alive():
            self.signal(signal.SIGCONT)  # a paused process (database drill) cannot act on SIGTERM
            self.signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        # The whole group: prefork children and gunicorn workers go with their parent, also after a SIGKILL drill.
        self.signal(signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self.pid = None
        self.process = None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"


class ProdShape:
    """Starts and stops the whole production shape; see the module docstring. Ports are chosen at start."""

    def __init__(
        self,
        root: Path | str = DEFAULT_DIR,
        *,
        web_workers: int = 3,
        max_upload_mb: int = 5,
        max_image_zip_mb: int = 8,
        stale_run_minutes: int = 1,
        stale_sweep_seconds: int = 10,
        extra_env: dict[str, str] | None = None,
    ):
        self.root = Path(root).resolve()
        self.web_workers = web_workers
        self.max_upload_mb = max_upload_mb
        self.max_image_zip_mb = max_image_zip_mb
        self.stale_run_minutes = stale_run_minutes
        self.stale_sweep_seconds = stale_sweep_seconds
        self.extra_env = dict(extra_env or {})
        self.ports: dict[str, int] = {}
        self.services: dict[str, Service] = {}
        self.secret_key = ""
        self.vector_database_url = ""
        self._request_session = None

    # ------------------------------------------------------------------ paths and addresses
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def cert_path(self) -> Path:
        return self.root / "tls" / "cert.pem"

    @property
    def media_root(self) -> Path:
        return self.root / "media"

    @property
    def static_root(self) -> Path:
        return self.root / "static"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['nginx']}"

    @property
    def gunicorn_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gunicorn']}"

    @property
    def database_url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.ports['mariadb']}/{DATABASE_NAME}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def cache_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/1"

    def django_env(self) -> dict[str, str]:
        """The environment every Django process of the shape gets: production settings, nothing from the caller."""
        env = {
            "PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "deepmed.settings",
            "DEBUG": "0",
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": self.base_url,
            "SITE_URL": self.base_url,
            "USE_X_FORWARDED_PROTO": "1",
            "TRUSTED_PROXY_COUNT": "1",
            # nginx reaches gunicorn from 127.0.0.1: the only peer whose X-Forwarded-For is believed.
            "TRUSTED_PROXY_IPS": "127.0.0.1",
            "LOG_FORMAT": "json",
            "VAR_DIR": str(self.root / "var"),
            "MEDIA_ROOT": str(self.media_root),
            "STATIC_ROOT": str(self.static_root),
            "DATABASE_URL": self.database_url,
            "VECTOR_DATABASE_URL": self.vector_database_url,
            # Persistent connections with health checks: the database drill proves they recover on their own.
            "DB_CONN_MAX_AGE": "60",
            "DB_CONNECT_TIMEOUT": "3",
            "CELERY_BROKER_URL": self.broker_url,
            "CACHE_URL": self.cache_url,
            "MAX_UPLOAD_MB": str(self.max_upload_mb),
            "MAX_IMAGE_ZIP_MB": str(self.max_image_zip_mb),
            "ACCOUNT_EMAIL_VERIFICATION": "mandatory",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(self.mail_dir),
            "PROMETHEUS_MULTIPROC_DIR": str(self.root / "prom"),
            # A dead worker's run is failed by beat's sweep within about a minute instead of six hours.
            "STALE_RUN_TIMEOUT_MINUTES": str(self.stale_run_minutes),
            "STALE_RUN_SWEEP_SECONDS": str(self.stale_sweep_seconds),
            "TMPDIR": str(self.root / "tmp"),
            "DEEPMED_PROD_SHAPE_DIR": str(self.root),
        }
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ start
    def start(self) -> ProdShape:
        started = time.monotonic()
        stop_recorded(self.root)  # leftovers of an interrupted run, if any
        self._prepare_folders()
        self.secret_key = secrets.token_urlsafe(50)
        self.ports = {name: free_port() for name in ("mariadb", "redis", "gunicorn", "nginx")}
        try:
            self._make_certificate()
            self._start_mariadb()
            self._start_redis()
            self._start_postgres()
            self._wait_mariadb()
            self._create_database()
            self._wait_redis()
            self._save_state()
            log(f"servers up after {time.monotonic() - started:.1f} s")
            self._prepare_django()
            log(f"migrated, static collected, guide loaded after {time.monotonic() - started:.1f} s")
            self._start_web()
            self._start_workers()
            self._save_state()
            self._wait_web()
            self.wait_workers()
            # Beat is up and has read its schedule from the database.
            beat = self.services["beat"]
            wait_for("Celery beat", lambda: "beat: Starting" in beat.log_path.read_text(errors="replace"), service=beat)
        except BaseException:
            log("start failed; the logs:\n" + self.log_tails())
            self.stop()
            raise
        log(f"ready in {time.monotonic() - started:.0f} s at {self.base_url} (certificate {self.cert_path})")
        return self

    def _prepare_folders(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        for sub in ("logs", "tls", "media", "static", "mail", "prom", "var", "tmp", "nginx/tmp", "nginx/conf.d"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)

    def _make_certificate(self) -> None:
        key = self.root / "tls" / "key.pem"
        subprocess.run(  # noqa: S603
            [
                binary("openssl"),
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(self.cert_path),
            ],  # fmt: skip
            check=True,
            capture_output=True,
        )
        key.chmod(0o600)

    def _start_mariadb(self) -> None:
        datadir = self.root / "mariadb"
        install = subprocess.run(  # noqa: S603
            [
                binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{install.stdout}\n{install.stderr}")
        self.services["mariadb"] = Service(
            "mariadb",
            [
                binary("mariadbd"),
                "--no-defaults",
                f"--datadir={datadir}",
                f"--port={self.ports['mariadb']}",
                "--bind-address=127.0.0.1",
                f"--socket={datadir}/mariadb.sock",
                "--user=root",
                "--skip-name-resolve",
                f"--pid-file={datadir}/mariadb.pid",
                # A throwaway instance: durability costs migration time and buys nothing here.
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=128M",
                "--skip-log-bin",
                "--performance-schema=0",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
            ],  # fmt: skip
            self.logs / "mariadb.log",
        ).start()

    def _mariadb_connect(self, timeout: int = 2):
        import MySQLdb

        return MySQLdb.connect(host="127.0.0.1", port=self.ports["mariadb"], user="root", connect_timeout=timeout)

    def _wait_mariadb(self) -> None:
        def answers():
            self._mariadb_connect().close()
            return True

        wait_for("MariaDB", answers, service=self.services["mariadb"])

    def _create_database(self) -> None:
        connection = self._mariadb_connect()
        try:
            connection.cursor().execute(
                f"CREATE DATABASE IF NOT EXISTS {DATABASE_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        finally:
            connection.close()

    def _start_redis(self) -> None:
        self.services["redis"] = Service(
            "redis",
            [
                binary("redis-server"),
                "--port",
                str(self.ports["redis"]),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.root / "var"),
            ],  # fmt: skip
            self.logs / "redis.log",
        ).start()

    def _wait_redis(self) -> None:
        import redis

        client = redis.Redis(port=self.ports["redis"], socket_connect_timeout=1)
        wait_for("Redis", client.ping, service=self.services["redis"])

    def _start_postgres(self) -> None:
        # scripts/embedded_pg.py keeps its data in $VAR_DIR/postgres: our own folder, never the test matrix's.
        result = subprocess.run(  # noqa: S603
            [PYTHON, str(ROOT / "scripts" / "embedded_pg.py"), "start"],
            env={**os.environ, "VAR_DIR": str(self.root), "DEEPMED_PROD_SHAPE_DIR": str(self.root)},
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S + 30,
            check=False,
        )
        (self.logs / "postgres-start.log").write_text(result.stderr + result.stdout)
        if result.returncode != 0:
            raise RuntimeError(f"embedded PostgreSQL did not start:\n{result.stderr}{result.stdout}")
        self.vector_database_url = result.stdout.strip().splitlines()[-1]

    def manage(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """Run `manage.py <args>` with the shape's settings; its output goes to logs/manage.log too."""
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.django_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        with open(self.logs / "manage.log", "a") as log_file:
            log_file.write(
                f"==== manage.py {' '.join(args)} -> {result.returncode} in {time.monotonic() - started:.1f} s\n"
                f"{result.stdout}{result.stderr}\n"
            )
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}")
        return result

    def django_json(self, code: str, timeout: float = 120):
        """Run Python `code` in `manage.py shell` with the shape's settings; it must print one JSON value last."""
        result = self.manage("shell", "-c", code, timeout=timeout)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def _prepare_django(self) -> None:
        # Independent steps side by side (two cores): the two databases' migrations and collectstatic.
        self._manage_parallel(
            [
                ["migrate", "--noinput"],
                ["migrate", "--noinput", "--database", "vectors"],
                ["collectstatic", "--noinput"],
            ]
        )
        self.manage("load_knowledge_base", "--only", "guide")

    def _manage_parallel(self, commands: list[list[str]], timeout: float = 300) -> None:
        started = time.monotonic()
        running = []
        for args in commands:
            out = open(self.logs / f"manage-{args[0]}-{len(running)}.log", "w+")  # noqa: SIM115 - closed below
            process = subprocess.Popen(  # noqa: S603
                [PYTHON, "manage.py", *args], cwd=ROOT, env=self.django_env(), stdout=out, stderr=subprocess.STDOUT
            )
            running.append((args, process, out))
        failures = []
        for args, process, out in running:
            try:
                code = process.wait(timeout=max(1, timeout - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            out.seek(0)
            text = out.read()
            out.close()
            log(f"manage.py {' '.join(args)} -> {code} after {time.monotonic() - started:.1f} s")
            if code != 0:
                failures.append(f"manage.py {' '.join(args)} failed ({code}):\n{text[-4000:]}")
        if failures:
            raise RuntimeError("\n".join(failures))

    def _start_web(self) -> None:
        env = {**self.django_env(), "GUNICORN_BIND": f"127.0.0.1:{self.ports['gunicorn']}"}
        env["WEB_CONCURRENCY"] = str(self.web_workers)
        self.services["gunicorn"] = Service(
            "gunicorn",
            [PYTHON, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "deepmed.wsgi"],
            self.logs / "gunicorn.log",
            env=env,
        ).start()
        self._write_nginx_config()
        self.services["nginx"] = Service(
            "nginx",
            [
                binary("nginx"),
                "-p",
                str(self.root / "nginx"),
                "-c",
                str(self.root / "nginx" / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            self.logs / "nginx.log",
        ).start()

    def _write_nginx_config(self) -> None:
        nginx_dir = self.root / "nginx"
        rendered = render_nginx_template(
            {
                "LISTEN_PORT": f"127.0.0.1:{self.ports['nginx']}",
                "SERVER_NAME": "127.0.0.1 localhost",
                "TLS_CERTIFICATE": self.cert_path,
                "TLS_CERTIFICATE_KEY": self.root / "tls" / "key.pem",
                "UPSTREAM": f"127.0.0.1:{self.ports['gunicorn']}",
                "STATIC_ROOT": self.static_root,
                "CLIENT_MAX_BODY_MB": max(self.max_upload_mb, self.max_image_zip_mb) + 1,
                "LIMIT_CONN_PER_IP": 100,
            }
        )
        (nginx_dir / "conf.d" / "deepmed.conf").write_text(rendered)
        temp = nginx_dir / "tmp"
        # As root, nginx's workers run as nobody: give them their temp folder (and only that) to write in.
        user_line = "user nobody nogroup;" if os.geteuid() == 0 else ""
        if os.geteuid() == 0:
            shutil.chown(temp, "nobody", "nogroup")
        (nginx_dir / "nginx.conf").write_text(
            f"""# Written by scripts/prod_shape.py: outer nginx.conf as in the Docker image; deepmed.conf: the template.
{user_line}
worker_processes 1;
pid {nginx_dir}/nginx.pid;
error_log {self.logs}/nginx-error.log warn;
events {{ worker_connections 2048; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {self.logs}/nginx-access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {nginx_dir}/conf.d/deepmed.conf;
}}
"""
        )
        check = subprocess.run(  # noqa: S603
            [binary("nginx"), "-t", "-q", "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf")],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the rendered configuration:\n{check.stderr}")

    def _start_workers(self) -> None:
        for name, queues in WORKER_QUEUES.items():
            self.start_worker(name, queues=queues)
        beat_dir = self.root / "beat"
        beat_dir.mkdir(exist_ok=True)
        self.services["beat"] = Service(
            "beat",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "deepmed",
                "beat",
                "-l",
                "INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
                "--schedule",
                str(beat_dir / "schedule"),
                "--pidfile",
                "",
            ],  # fmt: skip
            self.logs / "beat.log",
            env=self.django_env(),
        ).start()

    def start_worker(self, name: str, *, queues: str | None = None) -> Service:
        """Start (or restart, after a drill) one Celery worker: prefork, one process, as in production."""
        queues = queues or WORKER_QUEUES[name]
        service = Service(
            name,
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "deepmed",
                "worker",
                "--queues",
                queues,
                "--concurrency",
                "1",
                "--hostname",
                f"{name}@deepmed-prod",
                "-l",
                "INFO",
            ],  # fmt: skip
            self.logs / f"{name}.log",
            env=self.django_env(),
        ).start()
        self.services[name] = service
        if self.state_file.exists():  # a restart during a drill: `prod_shape.py stop` must know the new pid
            self._save_state()
        return service

    def _wait_web(self) -> None:
        def gunicorn_answers():
            request = urllib.request.Request(  # noqa: S310 - our own http:// URL
                f"{self.gunicorn_url}/healthz", headers={"Host": "127.0.0.1", "X-Forwarded-Proto": "https"}
            )
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                return response.status == 200

        wait_for("gunicorn", gunicorn_answers, service=self.services["gunicorn"])
        wait_for("nginx", lambda: self.get("/healthz", timeout=2).status_code == 200, service=self.services["nginx"])

    def ping_workers(self, names: list[str] | None = None, timeout: float = 1.0) -> set[str]:
        """The worker names (worker-a, worker-b) that answer a Celery ping over Redis now."""
        from celery import Celery

        app = Celery("prod-shape-probe", broker=self.broker_url)
        try:
            wanted = [f"{name}@deepmed-prod" for name in (names or list(WORKER_QUEUES))]
            replies = app.control.ping(destination=wanted, timeout=timeout) or []
        finally:
            app.close()
        return {hostname.split("@")[0] for reply in replies for hostname in reply}

    def wait_workers(self, names: list[str] | None = None, seconds: float = START_TIMEOUT_S) -> None:
        names = names or list(WORKER_QUEUES)
        for name in names:
            wait_for(f"Celery {name}", lambda n=name: n in self.ping_workers([n]), seconds=seconds,
                     service=self.services[name])  # fmt: skip

    # ------------------------------------------------------------------ HTTP through nginx
    @property
    def http(self):
        """A requests.Session that trusts the shape's certificate (no cookies shared with callers' own sessions)."""
        if self._request_session is None:
            self._request_session = self.session()
        return self._request_session

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def get(self, path: str, **kwargs):
        return self.http.get(self.url(path), **kwargs)

    def session(self):
        """A fresh requests.Session for one client (its own cookies), trusting the shape's certificate."""
        import requests

        client = requests.Session()
        client.verify = str(self.cert_path)
        # Not the caller's REQUESTS_CA_BUNDLE (it would replace `verify`) nor its proxies: this is 127.0.0.1.
        client.trust_env = False
        return client

    def register_user(self, email_address: str | None = None, password: str | None = None) -> dict:
        """Sign up through /register and follow the e-mailed confirmation link, as a person would.

        Returns {"email", "password", "session"}: the session is logged in (allauth logs in on confirmation).
        """
        email_address = email_address or f"clinician-{secrets.token_hex(4)}@hospital.example"
        password = password or f"Prod-{secrets.token_urlsafe(12)}-9z"
        client = self.session()
        register_url = self.url("/register")
        page = client.get(register_url, timeout=30)
        page.raise_for_status()
        token = _csrf_token(page.text)
        response = client.post(
            register_url,
            data={"csrfmiddlewaretoken": token, "email": email_address, "password1": password, "password2": password},
            headers={"Referer": register_url},
            timeout=30,
        )
        if response.status_code >= 400 or "/register" in response.url:
            raise AssertionError(f"registration refused ({response.status_code}) at {response.url}:\n{response.text}")
        link = wait_for("the confirmation e-mail", lambda: self.confirmation_link(email_address), seconds=30)
        page = client.get(link, timeout=30)
        page.raise_for_status()
        confirmed = client.post(
            link, data={"csrfmiddlewaretoken": _csrf_token(page.text)}, headers={"Referer": link}, timeout=30
        )
        confirmed.raise_for_status()
        return {"email": email_address, "password": password, "session": client}

    def confirmation_link(self, email_address: str) -> str | None:
        """The confirmation link from the newest e-mail to `email_address` in the file backend's folder."""
        links = []
        for path in sorted(self.mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime):
            for raw in path.read_text(errors="replace").split("\n" + "-" * 79 + "\n"):
                if not raw.strip():
                    continue
                message = email.message_from_string(raw.strip("\n"))
                if email_address not in (message.get("To") or ""):
                    continue
                parts = message.walk() if message.is_multipart() else [message]
                for part in parts:
                    payload = part.get_payload(decode=True)
                    if payload:
                        links += re.findall(r"https://[^\s\"<>]+/accounts/confirm-email/[^\s\"<>/]+/", payload.decode())
        return links[-1] if links else None

    def token(self, user: dict) -> str:
        """A JWT access token for `user` (from register_user) from /api/v1/auth/token/."""
        response = self.http.post(
            self.url("/api/v1/auth/token/"), json={"email": user["email"], "password": user["password"]}, timeout=30
        )
        if response.status_code != 200:
            raise AssertionError(f"token refused ({response.status_code}): {response.text}")
        return response.json()["access"]

    def auth_headers(self, user: dict) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    # ------------------------------------------------------------------ drills
    def pause(self, name: str) -> None:
        """SIGSTOP a server (and its children): it keeps its sockets but answers nothing."""
        self.services[name].signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.services[name].signal(signal.SIGCONT)

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started, as a crashed node would: no cleanup runs."""
        service = self.services[name]
        service.signal(signal.SIGKILL)
        wait_for(f"{name} to die", lambda: not service.alive(), seconds=10)

    def stop_service(self, name: str) -> None:
        self.services[name].stop()

    def restart_service(self, name: str) -> Service:
        """Start a stopped server again on the same port and data (Redis, MariaDB); waits until it answers."""
        service = self.services[name]
        if service.alive():
            service.stop()
        service.start()
        if name == "redis":
            self._wait_redis()
        elif name == "mariadb":
            self._wait_mariadb()
        self._save_state()
        return service

    # ------------------------------------------------------------------ stop and report
    def stop(self) -> None:
        # Front to back: nothing new comes in while the servers behind it go away.
        order = ["nginx", "gunicorn", "beat", *WORKER_QUEUES, "redis", "mariadb"]
        for name in order + [name for name in self.services if name not in order]:
            service = self.services.get(name)
            if service is not None:
                service.stop()
        _stop_postgres(self.root)
        if self._request_session is not None:
            self._request_session.close()
            self._request_session = None
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def log_tails(self, chars: int = 2500) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")) if self.logs.exists() else []:
            text = path.read_text(errors="replace")[-chars:]
            parts.append(f"---- {path.name} (last {len(text)} characters)\n{text}")
        return "\n".join(parts)

    def _save_state(self) -> None:
        state = {
            "ports": self.ports,
            "base_url": self.base_url if "nginx" in self.ports else "",
            "cert": str(self.cert_path),
            "pids": {name: service.pid for name, service in self.services.items() if service.pid},
            # What attach() needs to drive a running shape (its throwaway secret key included: hence 0600).
            "secret_key": self.secret_key,
            "vector_database_url": self.vector_database_url,
            "options": {
                "web_workers": self.web_workers,
                "max_upload_mb": self.max_upload_mb,
                "max_image_zip_mb": self.max_image_zip_mb,
                "stale_run_minutes": self.stale_run_minutes,
                "stale_sweep_seconds": self.stale_sweep_seconds,
                "extra_env": self.extra_env,
            },
            "services": {
                name: {"argv": service.argv, "env": service.env}
                for name, service in self.services.items()
                if service.pid
            },
        }
        self.state_file.touch(mode=0o600)
        self.state_file.write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, root: Path | str = DEFAULT_DIR) -> ProdShape:
        """A ProdShape for a shape already running (`prod_shape.py start`): to develop tests without restarting it."""
        root = Path(root).resolve()
        state = json.loads((root / "state.json").read_text())
        shape = cls(root, **state["options"])
        shape.ports = state["ports"]
        shape.secret_key = state["secret_key"]
        shape.vector_database_url = state["vector_database_url"]
        for name, pid in state["pids"].items():
            spec = state["services"][name]
            shape.services[name] = Service(name, spec["argv"], root / "logs" / f"{name}.log", env=spec["env"], pid=pid)
        return shape

    def __enter__(self) -> ProdShape:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if not match:
        raise AssertionError("no CSRF token in the page")
    return match.group(1)


def _stop_postgres(root: Path) -> None:
    if (root / "postgres").exists():
        subprocess.run(  # noqa: S603
            [PYTHON, str(ROOT / "scripts" / "embedded_pg.py"), "stop"],
            env={**os.environ, "VAR_DIR": str(root)},
            capture_output=True,
            timeout=60,
            check=False,
        )


def stop_recorded(root: Path = DEFAULT_DIR) -> int:
    """Stop what a state file records (a shape started by `start`, or left by a killed test run)."""
    state_file = root / "state.json"
    stopped = 0
    if state_file.exists():
        state = json.loads(state_file.read_text())
        for name, pid in state.get("pids", {}).items():
            service = Service(name, [], root / "logs" / f"{name}.log", pid=pid)
            if service.alive() and _is_ours(pid, root):
                service.stop()
                stopped += 1
        state_file.unlink()
    _stop_postgres(root)
    return stopped


def marked_processes(root: Path = DEFAULT_DIR) -> list[tuple[int, str]]:
    """Every live process started for the shape in `root` (they carry DEEPMED_PROD_SHAPE_DIR in their environment)."""
    marker = f"DEEPMED_PROD_SHAPE_DIR={Path(root).resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append((int(entry.name), command))
    return found


def _is_ours(pid: int, root: Path) -> bool:
    """Guard against a recycled pid: only a process whose command line or environment names our folder."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return str(root).encode() in cmdline or str(root).encode() in environ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "leftovers"])
    parser.add_argument("--dir", default=str(DEFAULT_DIR), help="folder of the shape (default var/prod)")
    args = parser.parse_args()
    root = Path(args.dir).resolve()
    if args.command == "start":
        shape = ProdShape(root).start()
        print(json.dumps({"base_url": shape.base_url, "cert": str(shape.cert_path), "ports": shape.ports}, indent=2))
        return 0
    if args.command == "stop":
        log(f"stopped {stop_recorded(root)} processes")
        return 0
    if args.command == "leftovers":
        # After the tests: anything still running is a bug of the harness. Name it, then end it.
        leftovers = marked_processes(root)
        for pid, command in leftovers:
            log(f"left running: {pid} {command}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return 1 if leftovers else 0
    state_file = root / "state.json"
    if not state_file.exists():
        log("not running")
        return 1
    state = json.loads(state_file.read_text())
    alive = {name: Service(name, [], root, pid=pid).alive() for name, pid in state["pids"].items()}
    print(json.dumps({**state, "alive": alive}, indent=2))
    return 0 if all(alive.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
