# The two commands of the quick start: `make demo` and `make test`.
# Both create .venv when missing and install what they need; re-runs reuse it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Stamps record what was installed from which pyproject.toml, so edits reinstall.
STAMP_RUNTIME := $(VENV)/.kmsnb-runtime
STAMP_TEST := $(VENV)/.kmsnb-test

.PHONY: demo test lint typecheck unit bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUNTIME): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[aliyun,pandas,notebook]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUNTIME)

demo: $(STAMP_RUNTIME)
	$(PY) -m kmsnb.demo

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -p no:cacheprovider
	$(BIN)/pytest -p no:cacheprovider --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/

unit: $(STAMP_TEST)
	$(BIN)/pytest -m unit -q

bench: $(STAMP_TEST)
	$(PY) bench/bench_files.py
	$(PY) bench/bench_kms.py
	$(PY) bench/bench_dataframe.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/out
