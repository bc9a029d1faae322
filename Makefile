# hanport: make install | test | lint | bench | run
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Two workers, each taking whole test files (tests start their own servers on free ports)
PYTEST_PARALLEL ?= -n 2 --dist loadfile

.PHONY: install clients test lint format bench run clean

SCHEMA := tests/stack/grafana_schema

$(VENV)/.installed: pyproject.toml setup.py $(wildcard services/export/sinks/*.c)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Grafana's dashboard types for the dashboard test (skipped where npm is missing)
$(SCHEMA)/node_modules/.package-lock.json: $(SCHEMA)/package-lock.json
	if command -v npm >/dev/null; then npm ci --prefix $(SCHEMA) --no-audit --no-fund --silent; fi

install: $(VENV)/.installed $(SCHEMA)/node_modules/.package-lock.json

# other people's client code (Home Assistant, openWB's pymodbus) in venvs of their own, cached
# under ~/.cache/hanport-test-clients (tests/clients/venvs.py): slow once, instant after
clients: install
	$(PY) -m tests.clients.venvs

# pytest exits 5 when it collected no tests: a failure here, said plainly
test: install clients
	$(PY) -m pytest -q $(PYTEST_PARALLEL) $(PYTEST_ARGS) || { status=$$?; \
	  [ $$status -ne 5 ] || echo "make test: pytest collected no tests" >&2; exit $$status; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services shared bench tests deploy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m bench

# `make run METERS=2`: a second simulated meter beside the first (HANPORT_RUN_METERS)
run: install
	$(if $(METERS),HANPORT_RUN_METERS=$(METERS) )$(PY) -m services.run

clean:
	rm -rf $(VENV) $(SCHEMA)/node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
