"""The failure notebooks' exercises: each runs its notebook's scenario against the learner's code.

tests/test_exercises.py runs every exercise (these included, since ``fNN`` modules are discovered like
chapters) through the shared battery: the solution passes, each known wrong answer fails with its
reason, placeholders are "not attempted", no message leaks the answer, a check leaves nothing running
behind it (labs, servers, clients, tasks). This file adds what only live checkers need: every failure
notebook has one, each documents at least three wrong answers, and one that hangs is cut off.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nbformat
import pytest

import wslab.exercises as wx
from wslab.exercises import Exercise, Status, maybe_await

ROOT = Path(__file__).resolve().parents[2]
FAILURES = sorted(p.stem for p in (ROOT / "notebooks" / "failures").glob("F*.ipynb"))
DONE = [c for c in wx.chapters() if c.startswith("F")]
EXERCISES = [e for c in DONE for e in wx.bind(c, {}).chapter.exercises]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_failure_chapters_are_discovered_and_bound_by_notebook_name() -> None:
    assert DONE, "no failure notebook has exercises"
    for chapter in DONE:
        bound = wx.bind(chapter, {})
        assert bound.chapter.notebook in FAILURES
        assert wx.bind(bound.chapter.notebook, {}).chapter is bound.chapter


@pytest.mark.parametrize("chapter", DONE)
def test_the_notebook_binds_its_exercises_and_stores_them_unanswered(chapter: str) -> None:
    notebook = wx.bind(chapter, {}).chapter.notebook
    nb = nbformat.read(ROOT / "notebooks" / "failures" / f"{notebook}.ipynb", as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any(f'exercises.bind("{chapter}", globals())' in s for s in sources)
    for number, exercise in enumerate(wx.bind(chapter, {}).chapter.exercises, start=1):
        cells = [c for c in nb.cells if f"await ex.q{number}.check()" in c.source]
        assert len(cells) == 1 and cells[0].id.startswith("failex-")
        outputs = [o.get("data", {}).get("text/plain", "") for o in cells[0].outputs if "data" in o]
        assert outputs and outputs[-1].startswith("Not attempted"), (chapter, exercise.__name__, outputs)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.__name__)
def test_at_least_three_known_wrong_answers_each_with_its_own_reason(exercise: type[Exercise]) -> None:
    assert len(exercise.wrong_answers) >= 3
    reasons = [wrong.reason for wrong in exercise.wrong_answers]
    assert len(set(reasons)) >= 3, "three mistakes, taught by at least three different scenarios"


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.__name__)
async def test_learner_code_that_hangs_fails_the_check_within_bounds(exercise: type[Exercise]) -> None:
    """Every function the exercise reads replaced by one that sleeps for ever: Incorrect, not a hang."""
    namespace: dict[str, Any] = {}
    exec(exercise.placeholder, namespace)
    for name in exercise.reads:
        if asyncio.iscoroutinefunction(namespace[name]):

            async def forever(*args: Any, **kwargs: Any) -> None:
                await asyncio.sleep(3600)

            namespace[name] = forever
        else:

            def stuck(*args: Any, **kwargs: Any) -> None:
                raise TimeoutError("stuck")

            namespace[name] = stuck
    async with asyncio.timeout(60):
        result = await maybe_await(exercise(namespace).check())
    assert result.status is Status.INCORRECT, result
