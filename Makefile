# Two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev bench bench-10m clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/activation demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 -q

# Benchmarks print figures; they are not tests. One at a time on a shared machine (flock).
bench: $(VENV)/.installed-dev
	flock /tmp/activation-bench.lock $(BIN)/python bench/plan_scale.py --rows 1000000

bench-10m: $(VENV)/.installed-dev
	flock /tmp/activation-bench.lock $(BIN)/python bench/plan_scale.py --rows 10000000 --engine duckdb --memory-limit 300MB
	flock /tmp/activation-bench.lock $(BIN)/python bench/plan_scale.py --rows 10000000 --engine postgres --repeat 2

clean:
	rm -rf $(VENV) .activation out
