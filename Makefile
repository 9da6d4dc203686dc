# wslab: two commands for learners (`make lab`, `make test`), a few more for authors.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wslab-installed
LOCK   := requirements.lock
# the uv release pinned in the lock: it installs the lock into the venv (fast, hash-checked)
UV_PIN := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(LOCK))

.PHONY: lab test notebooks timings student wheelhouse offline-check lint doctor bench clean

# Create the virtualenv and install exactly the tested set (requirements.lock: versions and hashes),
# then wslab itself. Re-runs when the lock or pyproject.toml changes. pip only bootstraps uv, which
# syncs the venv to the lock (removing anything the lock does not list).
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit("wslab needs Python 3.11 or newer; this is " + sys.version.split()[0] + ". Set PYTHON=python3.12 (or similar).") if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --disable-pip-version-check -q "uv==$(UV_PIN)"
	$(BIN)/uv pip sync -q --python $(BIN)/python $(LOCK)
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## Start the course in JupyterLab (opens notebooks/).
# JupyterLab refuses to run as root without --allow-root (containers, CI boxes); pass it only there.
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root) $(ARGS)

## Run every test: unit tests, integration tests and every notebook under strict nbval.
## PYTEST_ARGS passes options on, e.g. make test PYTEST_ARGS='-m "not slow"' or PYTEST_ARGS=tests/test_lab.py
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Re-execute notebooks in place to regenerate their stored outputs (NB=path to do one).
notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py $(NB)

## Run every notebook and print how long each takes on this machine; writes nothing (NB=path for one).
timings: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py --no-write $(NB)

## Workshop copies: build/student (answers replaced by placeholders) and build/solution (reference answers).
student: $(STAMP)
	$(BIN)/python tools/notebook_variants.py student build/student
	$(BIN)/python tools/notebook_variants.py solution build/solution

## For a room with no internet: every wheel the course needs, in wheelhouse/ (copy it to a USB stick).
## Install from it with: pip install --no-index --find-links wheelhouse 'wslab[dev]'
wheelhouse: $(STAMP)
	$(BIN)/python -m pip wheel --disable-pip-version-check -q -w wheelhouse '.[dev]'
	@echo "wheelhouse/: $$(ls wheelhouse | wc -l) wheels"

## Prove the wheelhouse installs with the package index switched off, into a fresh venv.
offline-check: wheelhouse
	bash tools/offline_install_check.sh wheelhouse

## What is installed, what is missing, and how to get it.
doctor: $(STAMP)
	$(BIN)/python -m wslab doctor

## Style and types: ruff, then mypy (strict on wslab/, configured in pyproject.toml; zero errors).
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	$(BIN)/python benchmarks/serve_timings.py
	$(BIN)/python benchmarks/fanout.py --quick
	$(BIN)/python benchmarks/scaling.py --quick

clean:
	rm -rf $(VENV) .venv-3.12 build wheelhouse *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
