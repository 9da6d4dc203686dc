"""Shared pytest set-up for the unit tests and the notebooks (nbval)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))

from leakcheck import Snapshot

# Notebooks are compared cell by cell: a release that changes a lesson must fail at the cell that shows
# the behaviour, not add a drift warning to every notebook's first cell (wslab.versions).
os.environ.setdefault("WSLAB_NO_DRIFT_WARNING", "1")

_session_start: Snapshot | None = None


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the loop Jupyter gives a notebook), via anyio's pytest plugin."""
    return "asyncio"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n 2 --dist loadgroup``) a notebook's cells share one kernel, so they must
    run in order on one worker: each notebook is one group. Every other test is spread on its own."""
    for item in items:
        if item.nodeid.split("::")[0].endswith(".ipynb"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_sessionstart(session: pytest.Session) -> None:
    global _session_start
    _session_start = Snapshot.take()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything wslab started is still alive: sockets, child processes, threads."""
    if _session_start is None:
        return
    problems = Snapshot.take().leaks_since(_session_start)
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("LEAK CHECK FAILED: " + "; ".join(problems), red=True)
        session.exitstatus = 1
