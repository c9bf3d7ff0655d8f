#!/usr/bin/env bash
# The suite once per database: sqlite (with the browser tests), postgres (embedded PostgreSQL 18 + pgvector),
# mysql (MariaDB at TEST_MYSQL_URL; skipped with a visible line when it is unset).
#
#   scripts/test_matrix.sh [sqlite] [postgres] [mysql]      (all three when none is named)
#
# Every pass runs, even after a failure, so one run shows the whole picture; the exit status is non-zero if any
# pass failed. Each pass gets a clean environment, so a DEBUG=1 or DATABASE_URL in your shell cannot change what
# the suite tests. PYTEST_ARGS adds pytest arguments (e.g. PYTEST_ARGS='-k lockout -x'); PYTEST_WORKERS sets the
# number of pytest-xdist processes (default 2, 0 for none).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${VENV:-.venv}/bin
WORKERS=${PYTEST_WORKERS:-2}
read -r -a EXTRA_ARGS <<<"${PYTEST_ARGS:-}"
passes=("$@")
[[ ${#passes[@]} -eq 0 ]] && passes=(sqlite postgres mysql)

declare -A outcome seconds
SKIPPED=99  # a pass's "not run" status; pytest itself exits 0-5
failed=0

xdist_args=()
if [[ "$WORKERS" != "0" ]]; then
    # `--dist load` hands tests out in collection order, which pytest-django has sorted: plain `db` tests first,
    # then transactional ones (live server, real worker), whose flush removes rows made by data migrations.
    # `loadfile` would break that order within a process, and tests relying on those rows would fail by chance.
    xdist_args=(-n "$WORKERS" --dist load)
fi

# The test settings, pytest and Chromium make temporary folders per process; one folder per run, removed at the end,
# keeps them from piling up in /tmp.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/deepmed-tests.XXXXXX")
trap 'rm -rf "$run_tmp"' EXIT

# Only what a test run needs from the caller's environment; the settings come from deepmed/test_settings.py.
clean_env=(env -i "PATH=$PATH" "HOME=${HOME:-/root}" "LANG=${LANG:-C.UTF-8}" "TMPDIR=$run_tmp")
[[ -n "${CI:-}" ]] && clean_env+=("CI=$CI")
[[ -n "${TERM:-}" ]] && clean_env+=("TERM=$TERM")

run_pytest() {  # run_pytest <DATABASE_URL or ""> <pytest args...>
    local url=$1
    shift
    local envs=("${clean_env[@]}")
    [[ -n "$url" ]] && envs+=("DATABASE_URL=$url")
    "${envs[@]}" "$BIN/python" -m pytest -q -p no:cacheprovider --durations=10 "${xdist_args[@]}" "$@" "${EXTRA_ARGS[@]}"
}

pass_sqlite() {
    if [[ ! -x /usr/bin/chromium ]]; then
        echo "!! /usr/bin/chromium is missing: the browser tests will be skipped (apt-get install chromium)"
    fi
    run_pytest ""
}

pass_postgres() {
    local url rc
    if ! url=$("$BIN/python" scripts/embedded_pg.py start); then
        echo "!! embedded PostgreSQL did not start (see the lines above)"
        return 1
    fi
    run_pytest "$url" -m "not browser"
    rc=$?
    "$BIN/python" scripts/embedded_pg.py stop || true
    return $rc
}

pass_mysql() {
    if [[ -z "${TEST_MYSQL_URL:-}" ]]; then
        echo "MariaDB skipped: set TEST_MYSQL_URL (e.g. TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/deepmed)"
        return "$SKIPPED"
    fi
    run_pytest "$TEST_MYSQL_URL" -m "not browser"
}

for name in "${passes[@]}"; do
    case "$name" in
        sqlite | postgres | mysql) ;;
        *) echo "unknown pass '$name' (use sqlite, postgres, mysql)"; exit 64 ;;
    esac
    echo
    echo "==== $name pass ===================================================================="
    started=$(date +%s)
    "pass_$name"
    rc=$?
    seconds[$name]=$(($(date +%s) - started))
    case $rc in
        0) outcome[$name]=passed ;;
        "$SKIPPED") outcome[$name]=skipped ;;
        *) outcome[$name]="FAILED (exit $rc)"; failed=1 ;;
    esac
    echo "==== $name pass: ${outcome[$name]} in ${seconds[$name]}s"
done

echo
echo "==== test matrix ==================================================================="
for name in "${passes[@]}"; do
    printf '  %-9s %-18s %4ss\n' "$name" "${outcome[$name]}" "${seconds[$name]}"
done
if [[ -z "${TEST_MYSQL_URL:-}" && " ${passes[*]} " == *" mysql "* ]]; then
    echo "  MariaDB skipped: set TEST_MYSQL_URL to include it"
fi
exit $failed
