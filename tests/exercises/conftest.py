"""What the exercise suites share: the learner-answer suites are marked slow.

The build track, the capstone and the failure lab's exercises check learner answers against real
servers, replicas and Redis: minutes of wall time, and the same wslab code on every interpreter, so CI
runs them on its first Python only (marked "slow", like the notebook re-runs). The quick checks of
every exercise (test_exercises.py, test_exercise_mutants.py) run everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ANSWER_SUITES = {"test_build_track.py", "test_capstone.py", "test_failure_exercises.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the learner-answer suites slow (see ANSWER_SUITES); other folders' items are left alone.

    pytest calls this hook with every collected item, not only this folder's, hence the path check.
    """
    for item in items:
        if item.path.parent == HERE and item.path.name in ANSWER_SUITES:
            item.add_marker(pytest.mark.slow)
