"""Shared pytest set-up for the unit tests and the notebooks (nbval)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

# tests/support/ (helpers shared by test folders, never test modules) is imported as `support.<module>`
sys.path.insert(0, str(Path(__file__).parent / "tests"))

from support.leakcheck import Snapshot

# how pytest-xdist (make test) spreads the suite over workers: tests/support/scheduling.py
pytest_plugins = ["support.scheduling"]

# Notebooks are compared cell by cell: a release that changes a lesson must fail at the cell that shows
# the behaviour, not add a drift warning to every notebook's first cell (wslab.versions).
os.environ.setdefault("WSLAB_NO_DRIFT_WARNING", "1")

_session_start: Snapshot | None = None


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the loop Jupyter gives a notebook), via anyio's pytest plugin."""
    return "asyncio"


def pytest_sessionstart(session: pytest.Session) -> None:
    global _session_start
    _session_start = Snapshot.take()


_worker_leaks: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, on the controller: collect what each worker's own leak check found."""
    found = getattr(node, "workeroutput", {}).get("wslab_leaks", [])
    _worker_leaks.extend(f"worker {node.gateway.id}: {problem}" for problem in found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything wslab started is still alive: sockets, child processes, threads.

    Under pytest-xdist each worker checks itself and hands its findings to the controller, which fails
    the run (a worker's own exit status would not reach the command line).
    """
    problems = Snapshot.take().leaks_since(_session_start) if _session_start is not None else []
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports it
        workeroutput["wslab_leaks"] = problems
        return
    problems += _worker_leaks
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("LEAK CHECK FAILED: " + "; ".join(problems), red=True)
        session.exitstatus = 1
