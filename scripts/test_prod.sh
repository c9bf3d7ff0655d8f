#!/usr/bin/env bash
# `make test-prod`: tests/prod against the production shape started on this machine (scripts/prod_shape.py):
# nginx + TLS, gunicorn, two Celery workers and beat on Redis, MariaDB, PostgreSQL+pgvector. The scenario, then the
# fault drills. The shape is started once and always stopped; afterwards no process of it may be left running.
#
#   scripts/test_prod.sh                          PYTEST_ARGS='-k scenario' narrows it
#
# A clean environment, as in scripts/test_matrix.sh: the shape sets every Django setting itself.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${VENV:-.venv}/bin
read -r -a EXTRA_ARGS <<<"${PYTEST_ARGS:-}"
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/deepmed-prod.XXXXXX")

cleanup() {
    # The session fixture stops the shape; this catches what a killed pytest could not (state file, then marks).
    "$BIN/python" scripts/prod_shape.py stop ${PROD_SHAPE_DIR:+--dir "$PROD_SHAPE_DIR"} >/dev/null 2>&1 || true
    rm -rf "$run_tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clean_env=(env -i "PATH=$PATH" "HOME=${HOME:-/root}" "LANG=${LANG:-C.UTF-8}" "TMPDIR=$run_tmp" DEEPMED_PROD_SHAPE=1)
[[ -n "${CI:-}" ]] && clean_env+=("CI=$CI")
# Another folder for the shape (default var/prod), e.g. to keep a `prod_shape.py start` of your own running.
[[ -n "${PROD_SHAPE_DIR:-}" ]] && clean_env+=("PROD_SHAPE_DIR=$PROD_SHAPE_DIR")

started=$(date +%s)
"${clean_env[@]}" "$BIN/python" -m pytest tests/prod -q -p no:cacheprovider -p no:xdist --durations=0 "${EXTRA_ARGS[@]}"
rc=$?
echo "==== test-prod: pytest exit $rc after $(($(date +%s) - started))s"

dir_args=(${PROD_SHAPE_DIR:+--dir "$PROD_SHAPE_DIR"})
"$BIN/python" scripts/prod_shape.py stop "${dir_args[@]}" >/dev/null 2>&1 || true
if ! "$BIN/python" scripts/prod_shape.py leftovers "${dir_args[@]}"; then
    echo "!! processes of the production shape were left running (listed above; now killed)"
    [[ $rc -eq 0 ]] && rc=1
fi
exit $rc
