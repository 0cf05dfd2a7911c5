# Deme — two commands: `make run` starts the platform, `make test` passes every test.
# Everything below is idempotent: a second run only does what changed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_HASH := $(shell sha256sum pyproject.toml | cut -c1-12)
DEPS_STAMP := $(VENV)/.deps-$(DEPS_HASH)
DEME_BOT ?= rasa
export DEME_BOT

.PHONY: help venv run migrate seed bot-env bot-model test test-platform test-bot lint \
        services chromium bench clean

help:
	@echo "make run    — set up and start the whole platform (http://localhost:$${DEME_PORT:-8000})"
	@echo "make test   — set up and run every test (PostgreSQL, Redis, Celery, Rasa, browser)"
	@echo "make lint   — ruff + mypy"
	@echo "make bench  — run the benchmarks in bench/"

$(DEPS_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "Deme needs Python >= 3.11 as '$(PYTHON)' (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> Installing Deme and its dependencies into $(VENV) (first start, or pyproject.toml changed: ~2 min)…"
	@start=$$(date +%s); \
	  $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat && \
	  echo "    Deme installed in $$(( $$(date +%s) - start )) s"
	@rm -f $(VENV)/.deps-* && touch $@

venv: $(DEPS_STAMP)

migrate: venv
	@$(VENV)/bin/deme migrate

seed: migrate
	@$(VENV)/bin/deme seed

# The Rasa bot lives in its own Python 3.10 environment, cached outside the repo and keyed
# on bot/requirements.txt; the model is retrained only when its data or config change.
bot-env:
	@if [ "$(DEME_BOT)" = "rasa" ]; then bash bot/scripts/ensure_env.sh >/dev/null; fi

bot-model: bot-env
	@if [ "$(DEME_BOT)" = "rasa" ]; then bash bot/scripts/train_if_changed.sh | tail -n 1; fi

run: seed bot-model
	@echo
	@if [ "$(DEME_BOT)" = "rasa" ]; then \
	  echo "==> Starting; Rasa loads its model for ~1 min after the web app is up. Until then SMS"; \
	  echo "    replies come from the keyword fallback and the console shows a banner saying so."; fi
	@echo "  Deme: http://localhost:$${DEME_PORT:-8000}   (console, /api/docs, /healthz, /readyz)"
	@f="$${DEME_VAR_DIR:-var}/first-admin-password.txt"; if [ -f "$$f" ]; then \
	  echo "  Log in as 'admin' with password: $$(cat $$f)"; \
	else echo "  Log in with your admin account (reset: .venv/bin/deme create-user admin --role admin --reset-password)"; fi
	@echo "  Bot: $(DEME_BOT)   Ctrl-C stops everything."
	@echo
	@exec $(VENV)/bin/deme run --bot $(DEME_BOT)

services:
	@bash scripts/ensure_services.sh

chromium:
	@bash scripts/ensure_chromium.sh

lint: venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

# The whole suite on the server stack (PostgreSQL + Redis), then the acceptance set — every
# test that starts the platform — on the embedded default of `make run` (SQLite + embedded
# broker): both deployments of the one product pass the same tests (README "Tests").
ACCEPTANCE_TESTS := tests/e2e tests/console tests/gateway tests/ussd tests/tickets \
                    tests/core/test_sqldialect.py tests/core/test_unique_constraints.py

test-platform: venv services chromium
	@echo "== pytest on the server stack (PostgreSQL + Redis)"
	@$(PY) -m pytest tests --deployment=server
	@echo "== pytest on the embedded deployment (SQLite + embedded broker, as make run)"
	@$(PY) -m pytest $(ACCEPTANCE_TESTS) --deployment=embedded

test-bot: venv
	@if [ "$(DEME_BOT)" = "rasa" ]; then bash bot/scripts/test.sh; \
	else echo "DEME_BOT=$(DEME_BOT): Rasa bot tests skipped"; fi

test: lint test-bot test-platform

bench: venv services
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script; done

clean:
	rm -rf var/test-* .pytest_cache .mypy_cache .ruff_cache
