# One entry point for people and CI. Every target that needs tools sets them up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
BUF     := node_modules/.bin/buf
STAMP   := $(VENV)/.installed

.PHONY: help setup run demo test test-fast fuzz lint audit proto proto-check buf-breaking bench lock clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# buf is pinned exactly in package.json (its platform binaries are pinned by buf itself).
# `npm install` rather than `npm ci`: npm 11 refuses this lock's optional platform packages.
# --package-lock=false: install never rewrites the tracked lock (buf and its platform
# binaries are pinned exactly, so the lock is not needed to resolve them).
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --package-lock=false --loglevel=error
	touch $@

setup: $(STAMP)  ## Create .venv and install the pinned Python dependencies

run: setup  ## Start every service on embedded defaults (SQLite, in-process limiter)
	$(PY) -m services

# Against the stack `make run` serves (in another terminal); the same variables find moved ports.
demo: setup  ## Narrated walk-through against the running `make run` stack (codes from var/inbox.jsonl)
	$(PY) -m services.demo

test: setup  ## Run the whole test suite (real PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)
	$(PY) -m pytest

test-fast: setup  ## Unit tests only
	$(PY) -m pytest -m unit -q

# The generated-input tests (marker `fuzz`) under the randomized `fuzz` hypothesis profile:
# twenty times the examples of `make test`, over 10,000 requests to auth's three ports. A
# failure prints the example's blob to reproduce it; .hypothesis/ keeps it for the next run.
fuzz: setup  ## Generated-input tests with random draws and many examples (HYPOTHESIS_PROFILE=fuzz)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -m fuzz -q --timeout=3600

lint: setup node_modules/.installed  ## buf lint, stale generated code, ruff, mypy
	$(BUF) lint
	$(MAKE) --no-print-directory proto-check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# pip-audit of requirements.lock (scripts/audit_deps.py: ignored vulnerabilities are listed there,
# each with its reason). Exit 3 when the vulnerability service gives no answer: that is no
# result, never a pass; AUDIT_FLAGS=--allow-unreachable turns it into a warning (CI does).
audit: setup  ## pip-audit the locked dependencies (AUDIT_SERVICE=osv for api.osv.dev)
	$(PY) scripts/audit_deps.py $(AUDIT_FLAGS)

proto: setup  ## Regenerate Python code (and .pyi stubs) from protos/
	$(PY) scripts/gen_protos.py gen/python

proto-check: setup  ## Fail when gen/python differs from what protos/ generate
	$(PY) scripts/gen_protos.py --check gen/python

buf-breaking: setup node_modules/.installed  ## Compare protos/ with main's (use after all four services have landed)
	$(BUF) breaking --against '.git#branch=main'

# One table at the end (each row with the command reproducing it), also written to
# var/bench/<timestamp>.json and var/bench/latest.json; QUICK=1 shortens every round (< 2 min).
bench: setup  ## Benchmarks; print ratios against a baseline measured in the same run (QUICK=1: short)
	QUICK=$(QUICK) $(PY) -m benchmarks

lock:  ## Re-resolve requirements.lock from pyproject.toml
	$(PY) -m uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache var
