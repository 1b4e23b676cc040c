# Two commands on a fresh machine: `make demo` (the main job) and `make test` (everything CI runs).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo derive-sample test lint typecheck tools bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m worker demo

# The sample has invalid trades on purpose: derive lists them on stderr and exits 3
# ("some lines rejected"), which is the expected outcome here, so the target succeeds.
derive-sample: $(BIN)/.installed
	@set +e; $(BIN)/balance-sink derive --fee-schedule examples/fee_schedule.toml \
	  examples/trades.jsonl; rc=$$?; \
	if [ $$rc -eq 3 ]; then \
	  echo "derive-sample: the rejected lines above are invalid on purpose (exit 3 expected)" >&2; \
	  exit 0; \
	fi; exit $$rc

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# promtool (Prometheus rule tests) comes from Debian's prometheus package.
tools:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else echo "promtool missing: sudo apt-get install prometheus" >&2; exit 1; fi; }

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: lint typecheck tools
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
