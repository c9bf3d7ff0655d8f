# DeepMed: `make run` starts everything on the embedded defaults, `make test` runs the whole suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Rewritten only when a requirements file is newer, so `make run` skips pip on every later start.
STAMP := $(VENV)/.requirements-installed
REQUIREMENTS := requirements/base.txt requirements/dev.txt requirements/nodeps.txt
HOST ?= 127.0.0.1
PORT ?= 8000
export PYTHONUNBUFFERED := 1
# `make run` uses the embedded defaults: debug pages, SQLite and the filesystem broker under var/ (see README).
# Exported to manage.py, honcho and the processes it starts; the test passes get a clean environment instead.
run demo: export DEBUG ?= 1

.PHONY: help venv var-dir run demo lint fmt test test-sqlite test-postgres test-mysql test-prod check-deploy clean-var

help:
	@echo "make run            create .venv, migrate, load the demo, start web + worker + beat on http://$(HOST):$(PORT)/"
	@echo "make test           ruff, then the suite on SQLite, embedded PostgreSQL+pgvector and MariaDB (TEST_MYSQL_URL)"
	@echo "make test-sqlite | test-postgres | test-mysql   one database pass (PYTEST_ARGS='-k name' to narrow)"
	@echo "make test-prod      nginx+TLS, gunicorn, Celery on Redis, MariaDB, pgvector here: scenario + fault drills"
	@echo "make lint | fmt     ruff check + format check | apply ruff fixes and formatting"
	@echo "make check-deploy   manage.py check --deploy --fail-level WARNING with production settings"
	@echo "make demo           migrate and (re)create the demo user; prints its login"
	@echo "make clean-var      stop the test PostgreSQL and delete var/ (database, broker, uploads, demo login)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(REQUIREMENTS) | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/nodeps.txt
	@touch $(STAMP)

venv: $(STAMP)

# SQLite cannot create its file in a folder that does not exist; private, since it holds the data and demo login.
var-dir:
	@mkdir -p -m 700 "$${VAR_DIR:-var}"

run: venv var-dir
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	@# Idempotent (unchanged documents are skipped): the guide loads now, ICD-10-CM and HPO on the worker.
	$(PY) manage.py load_knowledge_base --background
	@# With DEBUG=1 the development server serves static files itself; otherwise WhiteNoise needs them collected.
	@if [[ ! "$${DEBUG,,}" =~ ^(1|true|yes|on)$$ ]]; then $(PY) manage.py collectstatic --noinput --verbosity 0; fi
	@echo
	@echo "  DeepMed is starting at http://$(HOST):$(PORT)/   (Ctrl-C stops web, worker and beat)"
	@echo
	HOST=$(HOST) PATH="$(abspath $(BIN)):$$PATH" exec $(BIN)/honcho start --procfile Procfile --port $(PORT)

demo: venv var-dir
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	scripts/test_matrix.sh sqlite postgres mysql

test-sqlite: venv
	scripts/test_matrix.sh sqlite

test-postgres: venv
	scripts/test_matrix.sh postgres

test-mysql: venv
	scripts/test_matrix.sh mysql

# The production shape on this machine (scripts/prod_shape.py, var/prod): needs nginx, redis-server, mariadbd, openssl.
test-prod: venv
	scripts/test_prod.sh

check-deploy: venv
	@# A throwaway key and a placeholder mail server unless set: the check is about the settings, not about these.
	DEBUG=0 ALLOWED_HOSTS="$${ALLOWED_HOSTS:-deepmed.example.org}" EMAIL_URL="$${EMAIL_URL:-smtp://localhost:25}" \
	SECRET_KEY="$${SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')}" \
	$(PY) manage.py check --deploy --fail-level WARNING

clean-var:
	@# Stops the test PostgreSQL first: deleting its folder under a running server corrupts nothing but leaks it.
	-$(PY) scripts/embedded_pg.py stop
	rm -rf var
