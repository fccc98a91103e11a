# The README's two commands: `make run` and `make test`. Both set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROJECTS := shared/pyproject.toml services/ingest/pyproject.toml services/classifier/pyproject.toml \
            services/recognition/pyproject.toml devstack/pyproject.toml

CHECKOV := .venv-checkov/bin/checkov

.PHONY: run test lint install clean train evaluate bench

$(STAMP): constraints.txt requirements-dev.txt $(PROJECTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-e shared -e services/ingest -e "services/classifier[train]" -e services/recognition -e devstack \
		-r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m devstack.cli run

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# checkov (the manifests' policy scan) lives in a virtualenv of its own: its pins clash with the project's.
$(CHECKOV): requirements-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $(CHECKOV)

test: $(STAMP) $(CHECKOV)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# The classifier's default model: retrain after changing corpus/, the features or the rules (deterministic).
train: $(STAMP)
	$(PY) -m classifier.cli train

evaluate: $(STAMP)
	$(PY) -m classifier.cli evaluate --json bench/results/classifier_evaluation.json

bench: $(STAMP)
	$(PY) bench/classifier_speed.py
	$(PY) bench/pipeline_throughput.py
	$(PY) bench/load.py

clean:
	rm -rf $(VENV) .venv-checkov data .pytest_cache
