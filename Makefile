# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The venv lives in .venv; it is (re)built when pyproject.toml or requirements/* change.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
CONSTRAINTS := -c requirements/constraints.txt
BFCL_EVAL := bfcl-eval==2026.3.23
export BFCL_PROJECT_ROOT ?= $(CURDIR)/.bfcl
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt requirements/bfcl-eval.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" setuptools wheel
	# 1. CPU torch first (a local wheel here); everything after is constrained to it.
	$(PIP) install -q torch==2.13.0
	# 2. The package, editable, with its test extra.
	$(PIP) install -q $(CONSTRAINTS) -e ".[test]"
	# 3. bfcl-eval without its numpy 1.x pin, then its light dependencies.
	$(PIP) install -q --no-deps $(BFCL_EVAL)
	$(PIP) install -q $(CONSTRAINTS) -r requirements/bfcl-eval.txt
	@$(PY) scripts/check_install.py
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q --durations=25   # the slowest tests, so CI time stays visible

demo: $(STAMP)
	$(VENV)/bin/dipo demo

bench: $(STAMP)
	$(PIP) install -q $(CONSTRAINTS) -e ".[bench]"   # TRL, the reference of bench_engine_vs_trl.py
	for s in scripts/bench_*.py; do echo "== $$s"; $(PY) $$s || exit 1; done

clean-venv:
	rm -rf $(VENV)
