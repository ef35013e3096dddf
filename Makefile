# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint format lint-imports lock install install-dev docs bench bench-10m bench-peers bench-peers-venv bench-quota bench-destinations clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The distribution was called `activation` before it became activation-etl: drop a stale copy.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip uninstall -q -y activation 2>/dev/null || true
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

# The dev install (make test, CI) takes the versions in requirements-dev.lock, every time.
$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock | $(BIN)/activate
	$(BIN)/pip uninstall -q -y activation 2>/dev/null || true
	$(BIN)/pip install -q -c requirements-dev.lock -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/activation demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 -q

# The inner loop: every test but those marked slow (the soak, long daemon runs, the demo's data).
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# Style, types and the import contracts; CI (.ci/run) runs it before the tests. `make format`
# puts the tree in ruff's format (the check below fails otherwise).
LINTED := activation activation_emulators tests bench examples
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy activation
	$(BIN)/lint-imports

# After changing a dependency in pyproject.toml: resolve the dev extra again (uv: seconds).
# Python 3.11 is the dev extra's floor (fakesnow 0.12.1 needs it); the runtime supports 3.10.
lock: | $(BIN)/activate
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -q \
		--custom-compile-command 'make lock' -o requirements-dev.lock

format: $(VENV)/.installed-dev
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

# The runtime package never imports the emulators (but from --sandbox and demo): pyproject's
# [tool.importlinter]; also run by the tests.
lint-imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports

# Benchmarks print figures; they are not tests. One at a time on a shared machine (flock).
bench: $(VENV)/.installed-dev
	flock /tmp/activation-bench.lock $(BIN)/python bench/plan_scale.py --rows 1000000

bench-10m: $(VENV)/.installed-dev
	flock /tmp/activation-bench.lock $(BIN)/python bench/plan_scale.py --rows 10000000 --engine duckdb --memory-limit 300MB
	flock /tmp/activation-bench.lock $(BIN)/python bench/plan_scale.py --rows 10000000 --engine postgres --repeat 2

# activation beside a raw-HTTP floor, a reference diff loop, dlt and drt-core, against one fake
# HubSpot endpoint. The peers come from .venv-peers (make bench-peers-venv), never from the
# project's dependencies; without it their rows say "not installed".
# Two syncs in two processes sharing one HubSpot app's quota (100 calls per 10 s).
bench-quota: $(VENV)/.installed-dev
	flock /tmp/activation-bench.lock $(BIN)/python bench/shared_quota.py

# A 100k first load to Braze and to Iterable, against the quota each emulator enforces.
bench-destinations: $(VENV)/.installed-dev
	flock /tmp/activation-bench.lock $(BIN)/python bench/destination_load.py --rows 100000

PEERS_VENV ?= .venv-peers
bench-peers: $(VENV)/.installed-dev
	flock /tmp/activation-bench.lock $(BIN)/python bench/peers.py --rows 100000 --rounds 3 --peers-python $(PEERS_VENV)/bin/python

bench-peers-venv:
	test -x $(PEERS_VENV)/bin/python || $(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q -r bench/requirements-peers.txt

# The documentation site: docs/ (its generated key tables first) built by mkdocs into site/.
# mkdocs gets a venv of its own, so it never changes what the tests run with.
DOCS_VENV ?= .venv-docs
docs: $(VENV)/.installed
	$(BIN)/python -m activation.project.reference > docs/schema.md
	test -x $(DOCS_VENV)/bin/mkdocs || ($(PY) -m venv $(DOCS_VENV) && $(DOCS_VENV)/bin/pip install -q 'mkdocs>=1.6,<2')
	$(DOCS_VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(DOCS_VENV) $(PEERS_VENV) site .activation out
