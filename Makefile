# The two commands of the quick start: `make demo` and `make test`.
# Both create .venv when missing and install what they need from uv.lock (the versions
# `make test` passes with); re-runs reuse it. `make test-browser` runs the tutorials in
# JupyterLab and headless Chromium, as CI does after `make test`; `make test-lowest` runs the
# tests on the oldest versions pyproject.toml allows, as CI does last.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# uv installs from uv.lock: the uv on PATH if it is the version that wrote the lock, else
# that version bootstrapped into the venv with pip, so nothing outside the venv is needed.
# `make lock` updates the lock.
UV_VERSION := 0.13.9
UV_ON_PATH := $(shell uv --version 2>/dev/null | grep -q '^uv $(UV_VERSION)\b' && command -v uv)
UV := $(or $(UV_ON_PATH),$(BIN)/uv)
STAMP_UV := $(VENV)/.kmsnb-uv-$(UV_VERSION)
# Stamps record what was installed from which pyproject.toml and uv.lock, so edits reinstall.
STAMP_RUNTIME := $(VENV)/.kmsnb-runtime
STAMP_TEST := $(VENV)/.kmsnb-test
STAMP_BROWSER := $(VENV)/.kmsnb-browser
# make test-lowest: its own venv, never from uv.lock.
VENV_LOWEST ?= .venv-lowest
STAMP_LOWEST := $(VENV_LOWEST)/.kmsnb-lowest

# The suite on every core, up to 4, a test file per worker (module-scoped servers start
# once); the notebooks (8 s) run after it in one process. make test-lowest stays serial:
# one run of it on the floors (older IPython and nbclient) lost a kernel notebook's alias
# under two workers, not reproduced alone.
PARALLEL := -n auto --maxprocesses 4 --dist loadfile

# uv: the project's environment is $(VENV); never download a Python (use $(PYTHON)'s).
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# --locked: stop if uv.lock no longer matches pyproject.toml (run `make lock`).
# --inexact: keep what other targets installed (uv itself, the test tools for `make demo`).
SYNC := $(UV) sync --locked --inexact --no-progress

.PHONY: demo test test-browser test-lowest lint typecheck lock-check lock unit bench clean

$(STAMP_UV):
	$(PYTHON) -m venv $(if $(UV_ON_PATH),--without-pip) $(VENV)
	$(if $(UV_ON_PATH),,$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION))
	touch $@

$(STAMP_RUNTIME): pyproject.toml uv.lock | $(STAMP_UV)
	$(SYNC) --extra aliyun --extra pandas --extra notebook
	touch $@

$(STAMP_TEST): pyproject.toml uv.lock | $(STAMP_UV)
	$(SYNC) --extra test
	touch $@ $(STAMP_RUNTIME)

$(STAMP_BROWSER): pyproject.toml uv.lock | $(STAMP_UV)
	$(SYNC) --extra test --group browser
	touch $@ $(STAMP_TEST) $(STAMP_RUNTIME)

demo: $(STAMP_RUNTIME)
	$(PY) -m kmsnb.demo

# uv.lock must match pyproject.toml (a static check, no resolution when it does);
# tests/repo/test_lock.py checks that binder/requirements.txt matches uv.lock.
lock-check: $(STAMP_UV)
	$(UV) lock --check --no-progress

# After a dependency change in pyproject.toml: re-resolve, and re-pin Binder from the lock.
lock: $(STAMP_UV)
	$(UV) lock --no-progress
	$(PY) tests/repo/binder_requirements.py --write

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

test: lock-check lint typecheck
	$(BIN)/pytest -p no:cacheprovider $(PARALLEL)
	$(BIN)/pytest -p no:cacheprovider --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/

# Installs Debian's chromium first when it is missing and this runs as root with apt-get;
# otherwise the test fails (it never skips) and says what is missing.
test-browser: $(STAMP_BROWSER)
	tests/browser/ensure-chromium
	$(BIN)/pytest -p no:cacheprovider tests/browser

# The floors in pyproject.toml are the oldest versions the suite passes on: this installs
# each direct dependency (every extra's too) at its floor, the rest at the newest that fits
# (uv's lowest-direct), in a fresh venv, and runs the unit, integration and notebook tiers
# and the notebooks there, and ruff. tests/repo checks the repository and uv.lock, not what
# is installed: `make test` runs it. mypy's floor holds with the locked libraries (`make
# typecheck`), not the oldest: IPython 8.20 and dask 2024.8 lack the types it checks.
$(STAMP_LOWEST): pyproject.toml | $(STAMP_UV)
	rm -rf $(VENV_LOWEST)
	$(UV) venv --quiet --python $(PYTHON) $(VENV_LOWEST)
	$(UV) pip install --python $(VENV_LOWEST)/bin/python --no-progress --resolution lowest-direct -e '.[test]'
	touch $@

test-lowest: $(STAMP_LOWEST)
	$(VENV_LOWEST)/bin/ruff check .
	$(VENV_LOWEST)/bin/ruff format --check .
	$(VENV_LOWEST)/bin/pytest -p no:cacheprovider -m "unit or integration or notebook" \
		--ignore=tests/repo
	$(VENV_LOWEST)/bin/pytest -p no:cacheprovider --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/

unit: $(STAMP_TEST)
	$(BIN)/pytest -m unit -q

bench: $(STAMP_TEST)
	$(PY) bench/bench_files.py
	$(PY) bench/bench_kms.py
	$(PY) bench/bench_dataframe.py

clean:
	rm -rf $(VENV) $(VENV_LOWEST) .pytest_cache .mypy_cache .ruff_cache bench/out tests/browser/out
