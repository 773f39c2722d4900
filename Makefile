# `make run` runs the main job on the offline digits dataset;
# `make test` runs the tests. Both create .venv and install when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint clean

$(STAMP): setup.py setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) benchmarks/search.py --max_trials=4 --epochs=4 --deploy --deploy_examples=50

test: $(STAMP)
	$(PY) -m ruff check fnas_keras benchmarks tests
	$(PY) -m pytest -q -n 2 --timeout=900 tests

lint: $(STAMP)
	$(PY) -m ruff check fnas_keras benchmarks tests

clean:
	rm -rf $(VENV) build *.egg-info
