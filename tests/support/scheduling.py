"""How `make test` spreads the suite over pytest-xdist workers: by file, except where a file's minutes split.

``--dist loadfile`` keeps each file on one worker, in order: a file's module-scoped set-ups are built
once and a notebook's nbval cells share one kernel. But a few files hold minutes of independent work,
one unit per parameter: every exercise's answers checked against live servers, every notebook's solution
copy executed. On one worker each, they finish last while the other workers idle. pytest-xdist's own
answer, ``--dist loadgroup`` with ``xdist_group`` marks, is silently ignored on pytest 9.2 (it renames
node ids, which pytest 9.2 no longer allows: pytest-dev/pytest-xdist#1386), and it then scatters a
notebook's cells over several kernels.

So under ``--dist loadfile`` this plugin swaps in a scheduler that keeps loadfile's units, except in the
files listed in :data:`SPLIT_BY_PARAMETER`, whose tests are grouped by the first word of their
parameter id (``[BuildRooms-never accepts]`` -> ``BuildRooms``): one exercise's or one notebook's tests
stay together (they share that exercise's checked answers, that notebook's run), different ones spread.
And it hands out the longest units first (:data:`LONGEST_FIRST`), so no worker starts a minute-long unit
when the others are about to finish.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

# Files whose tests are independent per parameter (each parametrised test's id starts with the unit
# it belongs to: an exercise class, a notebook file name).
SPLIT_BY_PARAMETER = frozenset(
    {
        "tests/exercises/test_exercises.py",
        "tests/exercises/test_build_track.py",
        "tests/exercises/test_failure_exercises.py",
        "tests/notebooks/test_notebook_variants.py",
    }
)
# Path prefixes, longest work first (measured with --durations: notebook solution runs, live answer
# checks, whole notebooks under nbval, browsers); everything else keeps its collection order after them.
LONGEST_FIRST = (
    "tests/notebooks/test_notebook_variants.py",
    "tests/exercises/",
    "notebooks/",
    "tests/browser/",
    "tests/fanout/test_soak.py",
    "tests/chat/test_chat_hardening.py",
)
_FIRST_WORD = re.compile(r"\[([A-Za-z0-9_.]+)")


def unit_of(nodeid: str) -> str:
    """The unit of work ``nodeid`` belongs to: its file, or its file and parameter's first word."""
    path = nodeid.split("::", 1)[0]
    if path in SPLIT_BY_PARAMETER and (match := _FIRST_WORD.search(nodeid)):
        return f"{path}[{match.group(1)}]"
    return path


def rank(nodeid: str) -> int:
    """Where ``nodeid``'s file comes in the order workers are given units (0 = first)."""
    return next(
        (i for i, prefix in enumerate(LONGEST_FIRST) if nodeid.startswith(prefix)), len(LONGEST_FIRST)
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadfile``: loadfile's scheduler, with :func:`unit_of`'s units."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class UnitScheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep the order set below, not "most tests first"
    return UnitScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, order the collection longest units first (every worker sorts alike, so the
    collections stay identical); a file keeps its own order. A run without xdist is left as collected."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: rank(item.nodeid))  # stable: within a rank, collection order
