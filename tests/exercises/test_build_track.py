"""The build track: the learner's chat, served for real and checked by real clients.

Every build exercise's reference solution passes its checker, and every known wrong answer (the bugs
tutorials ship: cleanup inside broadcast, ``except RuntimeError``, close before accept, ping without pong
tracking, backoff without jitter, a listener per connection, a test that waits forever...) fails with
the reason it is meant to teach. The plumbing that turns cells into a module is tested on its own, and a
check leaves no process, socket or task behind.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.leakcheck import Snapshot

import wslab.exercises as wx
from wslab.exercises import CheckResult, Status, maybe_await
from wslab.exercises.build import (
    BuildExercise,
    base_module,
    build_dir,
    carry,
    cell_source,
    learner_module,
    prune,
    reference_module,
    register_source,
)
from wslab.exercises.build_ch02 import BuildRooms
from wslab.exercises.build_ch07 import BuildTests

ROOT = Path(__file__).resolve().parents[2]
BUILD = [e for e in wx.all_exercises() if issubclass(e, BuildExercise)]
WRONG = [(e, w) for e in BUILD for w in e.wrong_answers]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def build_dir_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Saved modules go to a temp dir, never into the repository."""
    monkeypatch.setenv("WSLAB_BUILD_DIR", str(tmp_path / "mychat"))
    return tmp_path / "mychat"


def test_every_server_and_client_chapter_has_a_build_exercise() -> None:
    assert sorted(e.chapter for e in BUILD) == ["02", "03", "04", "05", "06", "07"]


def test_the_notebook_cells_are_the_exercises_placeholders() -> None:
    """What a learner sees in the notebook is what CI checks as "not attempted"."""
    import nbformat

    for exercise in BUILD:
        path = next((ROOT / "notebooks").glob(f"{exercise.chapter}_*.ipynb"))
        cells = nbformat.read(path, as_version=4).cells
        learner = [c.source for c in cells if c.get("id", "").startswith(f"build-{exercise.chapter}-p")]
        assert learner, path.name
        for source in learner:
            assert source.strip() in exercise.placeholder, (path.name, source[:60])


# -- the plumbing ---------------------------------------------------------------------------------------


def test_prune_keeps_the_last_definition_of_each_name_and_each_import_once() -> None:
    source = "import json\nx = 1\ndef f():\n    return 1\nimport json\n@dec\ndef f():\n    return 2\nx = 3\n"
    pruned = prune(source)
    assert pruned.count("import json") == 1
    assert "return 1" not in pruned and "@dec\ndef f():\n    return 2" in pruned
    assert "x = 1" not in pruned and "x = 3" in pruned


def test_cell_source_is_the_whole_cell_without_the_check_line() -> None:
    cell = (
        "import json\n\n\ndef helper():\n    return json\n\n\n"
        "def answer():\n    return helper()\n\n\nawait ex.q2.check()\n"
    )
    register_source(cell, "<cell 1>")
    namespace: dict[str, Any] = {}
    exec(compile(cell.replace("await ex.q2.check()", ""), "<cell 1>", "exec"), namespace)
    got = cell_source(namespace["answer"])
    assert got is not None and "def helper" in got and "import json" in got and "ex.q2" not in got


def test_a_learner_module_assembles_two_cells_in_order_on_top_of_the_given_imports() -> None:
    rooms_cell, chat_cell = BuildRooms.solution_code.split("\n\napp = FastAPI()")
    module = learner_module("02", [rooms_cell, "app = FastAPI()" + chat_cell])
    compile(module, "mychat.py", "exec")
    assert module.index("from fastapi import") < module.index("class Rooms") < module.index("app = FastAPI()")


def test_every_reference_module_compiles_and_later_chapters_replace_chat() -> None:
    for chapter in ("02", "03", "04", "06"):
        module = reference_module(chapter)
        compile(module, f"ch{chapter}.py", "exec")
        assert module.count("async def chat(") == 1, chapter
    assert "asyncio.timeout(expires_at" in reference_module("03")
    assert "class Bus" in reference_module("06") and "class Bus" not in reference_module("04")


def test_a_passing_check_saves_the_module_and_the_next_chapter_builds_on_it(build_dir_in_tmp: Path) -> None:
    assert base_module("03")[1] == "the reference solution of chapter 02"
    build_dir_in_tmp.mkdir(parents=True)
    (build_dir_in_tmp / "ch02.py").write_text(reference_module("02") + "\n# mine\n", encoding="utf-8")
    text, origin = base_module("03")
    assert origin == "your chapter 02 code (ch02.py)" and text.endswith("# mine\n")
    namespace: dict[str, Any] = {}
    carried = carry("03", namespace, solution=True)
    assert "reference solution" in repr(carried) and "Rooms" in namespace and "make_token" in namespace


def test_carry_for_chapter_07_writes_an_importable_chat_app(build_dir_in_tmp: Path) -> None:
    carried = carry("07", {})
    path = build_dir() / "chat_app.py"
    assert path.exists() and "chat_app" in repr(carried)
    result = subprocess.run(
        [sys.executable, "-c", "import chat_app; print(type(chat_app.app).__name__)"],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(path.parent)},
    )
    assert result.stdout.strip() == "FastAPI", result.stderr


# -- the checkers -----------------------------------------------------------------------------------


async def _check_source(exercise: type[BuildExercise], source: str) -> CheckResult:
    result = await maybe_await(exercise.check_source(source))
    assert isinstance(result, CheckResult)
    return result


# Each answer is served and checked once (seconds each: a uvicorn process, real clients); the tests
# below assert their own claims on that run: the verdict, the message, and what the check left behind.
_CHECKED: dict[tuple[type[BuildExercise], str], tuple[CheckResult, list[str]]] = {}


async def checked(exercise: type[BuildExercise], source: str) -> tuple[CheckResult, list[str]]:
    """The check of ``source`` and the leaks it left (processes, sockets), computed on first use."""
    if (exercise, source) not in _CHECKED:
        await asyncio.sleep(0)
        before = Snapshot.take()
        result = await _check_source(exercise, source)
        _CHECKED[exercise, source] = (result, Snapshot.take().leaks_since(before))
    return _CHECKED[exercise, source]


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", BUILD, ids=lambda e: e.__name__)
async def test_the_reference_solution_passes(exercise: type[BuildExercise]) -> None:
    result, leaks = await checked(exercise, exercise.solution_code)
    assert result.status is Status.CORRECT, result
    assert leaks == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("exercise", "wrong"),
    WRONG,
    ids=[f"{e.__name__}-{w.mistake}" for e, w in WRONG],
)
async def test_a_known_wrong_answer_fails_with_its_reason(exercise: type[BuildExercise], wrong: Any) -> None:
    result, leaks = await checked(exercise, wrong.source)
    assert result.status is Status.INCORRECT and wrong.reason in result.message, result
    for secret in exercise.secrets:
        assert secret not in result.message
    assert leaks == [], "a failed check must stop everything it started"


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", BUILD, ids=lambda e: e.__name__)
async def test_the_notebook_placeholder_is_not_attempted(exercise: type[BuildExercise]) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(exercise.placeholder, namespace)
    result = await maybe_await(exercise(namespace).check())
    assert isinstance(result, CheckResult) and result.status is Status.NOT_ATTEMPTED, result
    assert "is still the placeholder" in result.message


def test_hints_grow_and_no_hint_gives_the_answer_away() -> None:
    for exercise in BUILD:
        assert len(exercise.hints) == 3 and exercise.secrets, exercise.__name__
        for hint in exercise.hints:
            for secret in exercise.secrets:
                assert secret not in hint, (exercise.__name__, secret)


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", [BuildRooms], ids=lambda e: e.__name__)
async def test_a_check_of_a_hanging_server_ends_and_leaves_nothing_running(
    exercise: type[BuildExercise],
) -> None:
    """A handler that never accepts fails the check within its deadlines; no child or socket remains."""
    hanging = next(w for w in exercise.wrong_answers if w.mistake == "never accepts")
    result, leaks = await checked(exercise, hanging.source)
    assert result.status is Status.INCORRECT and "got no answer within" in result.message
    assert leaks == []


@pytest.mark.anyio
@pytest.mark.parametrize("exercise", [BuildTests], ids=lambda e: e.__name__)
async def test_a_test_module_that_hangs_is_killed_and_named(exercise: type[BuildExercise]) -> None:
    hanging = next(w for w in exercise.wrong_answers if w.mistake == "a test that waits forever")
    result, leaks = await checked(exercise, hanging.source)
    assert result.status is Status.INCORRECT and "did not finish" in result.message
    assert leaks == []
