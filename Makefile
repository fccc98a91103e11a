# The README's two commands: `make run` and `make test`. Both set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROJECTS := shared/pyproject.toml services/ingest/pyproject.toml services/classifier/pyproject.toml \
            services/recognition/pyproject.toml devstack/pyproject.toml

.PHONY: run test lint install clean

$(STAMP): constraints.txt requirements-dev.txt $(PROJECTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-e shared -e services/ingest -e services/classifier -e services/recognition -e devstack \
		-r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m devstack.cli run

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

clean:
	rm -rf $(VENV) data .pytest_cache
