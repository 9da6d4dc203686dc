# wslab: two commands for learners (`make lab`, `make test`), a few more for authors.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wslab-installed
LOCK   := requirements.lock
# the uv release pinned in the lock: it installs the lock into the venv (fast, hash-checked)
UV_PIN := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(LOCK))

.PHONY: lab test test-latest lock notebooks timings rehearse student wheelhouse offline-check lint doctor bench clean

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
# jupyter/labconfig makes Markdown pages (notebooks/failures/README.md) open rendered, not as source.
lab: $(STAMP)
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter $(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root) $(ARGS)

## Run every test: unit tests, integration tests and every notebook under strict nbval.
## PYTEST_ARGS passes options on, e.g. make test PYTEST_ARGS='-m "not slow"' or PYTEST_ARGS=tests/lab/test_lab.py
# Three workers (pytest-xdist): most tests wait on sockets, servers and kernels, so a 2-core laptop runs
# three at once (four starve the event loops of timing-sensitive checks). --dist loadfile keeps each file
# on one worker, in order, so a notebook's cells share one kernel under nbval; tests/support/scheduling.py
# splits the few minute-long files by exercise or notebook and hands out the longest units first.
# PYTEST_XDIST= runs everything in one process.
PYTEST_XDIST ?= -n 3 --dist loadfile
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

## Drift, caught by us before learners meet it: a separate venv (.venv-latest) with the newest releases
## pyproject.toml's ranges allow, ignoring the lock; prints what differs from the lock, then runs the
## suite (minus the tests that check the venv *is* the lock). A failure names the lesson that changed.
LATEST := .venv-latest
test-latest:
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	@$(LATEST)/bin/python -m pip install --disable-pip-version-check -q "uv==$(UV_PIN)"
	@mkdir -p build
	$(LATEST)/bin/uv pip compile -q --upgrade --python $(LATEST)/bin/python --extra dev pyproject.toml -o build/latest.txt
	$(LATEST)/bin/uv pip sync -q --python $(LATEST)/bin/python build/latest.txt
	$(LATEST)/bin/uv pip install -q --python $(LATEST)/bin/python --no-deps -e .
	$(LATEST)/bin/python -m wslab.versions
	$(LATEST)/bin/python -m pytest -m "not tested_set" $(PYTEST_ARGS)

## Refresh requirements.lock to the newest releases pyproject.toml allows (then run make test, commit
## both). One package only: make lock LOCK_ARGS='--upgrade-package uvicorn'
LOCK_ARGS ?= --upgrade
lock: $(STAMP)
	$(BIN)/uv pip compile -q --universal --generate-hashes --extra dev $(LOCK_ARGS) pyproject.toml -o $(LOCK)
	@echo "requirements.lock refreshed; differences from this venv:"; $(BIN)/python -m wslab.versions || true

## Re-execute notebooks in place to regenerate their stored outputs (NB=path to do one).
notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py $(NB)

## Run every notebook and write the measured run times into README.md and docs/instructors.md (one table, both).
timings: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py --timings

## A rehearsal for a workshop laptop: run every notebook, print how long each took, write nothing (NB=path for one).
rehearse: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py --no-write $(NB)

## Workshop copies: build/student (answers replaced by placeholders) and build/solution (reference answers).
student: $(STAMP)
	$(BIN)/python tools/notebook_variants.py student build/student
	$(BIN)/python tools/notebook_variants.py solution build/solution

## For a room with no internet: every wheel of the tested set (requirements.lock) and wslab's own, in
## wheelhouse/ (copy it and requirements.lock to a USB stick). Install from it with:
##   pip install --no-index --find-links wheelhouse -r requirements.lock && pip install --no-index --find-links wheelhouse --no-deps wslab
wheelhouse: $(STAMP)
	$(BIN)/python -m pip wheel --disable-pip-version-check -q -w wheelhouse -r $(LOCK)
	$(BIN)/python -m pip wheel --disable-pip-version-check -q -w wheelhouse --no-deps .
	@echo "wheelhouse/: $$(ls wheelhouse | wc -l) wheels"

## Prove the wheelhouse installs with the package index switched off, into a fresh venv.
offline-check: wheelhouse
	bash tools/offline_install_check.sh wheelhouse $(LOCK)

## What is installed, what is missing, and how to get it.
doctor: $(STAMP)
	$(BIN)/python -m wslab doctor

## Style and types: ruff, then mypy (strict on wslab/, configured in pyproject.toml; zero errors).
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

# the comparison libraries, constrained by the lock so the tested set stays as it is
bench: $(STAMP)
	$(BIN)/uv pip install -q --python $(BIN)/python -c $(LOCK) -e '.[dev,bench]'
	$(BIN)/python benchmarks/serve_timings.py
	$(BIN)/python benchmarks/fanout.py --quick
	$(BIN)/python benchmarks/scaling.py --quick

clean:
	rm -rf $(VENV) .venv-3.12 .venv-3.13 $(LATEST) build wheelhouse *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
