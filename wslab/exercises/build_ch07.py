"""Build track, chapter 07: a pytest module with a fixture, run by the checker in a subprocess.

The learner writes a test module in a cell: a ``client`` fixture (Starlette's ``TestClient`` around the
chapter 04 chat, imported as ``chat_app``) and tests. The checker writes the cell to a file and runs
pytest on it, each time in a child process with a hard timeout: against the correct chat (the tests
must pass, and finish), and against two broken chats (the tests must fail). A test suite that passes
against a broken chat tests nothing; one that hangs is worse than none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from wslab.exercises._core import Incorrect, NotAttempted, WrongAnswer, _is_placeholder
from wslab.exercises.build import (
    BuildExercise,
    build_dir,
    cell_source,
    ensure_chat_app,
    reference_module,
    runnable_placeholder,
)
from wslab.exercises.live import python_path

__all__ = ["BuildTests"]

TIMEOUT = 40.0
"""Seconds one pytest run may take, whole (a hard kill); each test gets ``PER_TEST`` (pytest-timeout)."""
PER_TEST = 8

HEADER = """
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from chat_app import app, make_token
"""

PLACEHOLDER = (
    HEADER
    + """

@pytest.fixture
def client():
    ...  # a TestClient around `app`, opened and closed by the fixture


def test_a_message_reaches_its_room_and_only_its_room(client):
    ...


def test_a_forged_token_is_closed_with_4001(client):
    ...
"""
)

_QUIET_CHECK = """\
        # carol must get nothing; a bare receive would wait forever, so she says something and reads that
        carol.send_json({"type": "say", "text": "marker"})
        assert carol.receive_json() == {"type": "message", "from": "carol", "text": "marker"}
"""

_AUTH_TEST = """

def test_a_forged_token_is_closed_with_4001(client):
    with client.websocket_connect("/ws/chat/lobby") as ws:
        ws.send_json({"type": "auth", "token": "mallory|9999999999|forged"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4001
"""

_ROOM_TEST = """

@pytest.fixture
def client():
    with TestClient(app) as client:  # runs the app's startup and shutdown around each test
        yield client


def join(ws, user):
    ws.send_json({"type": "auth", "token": make_token(user, 60)})
    assert ws.receive_json()["type"] == "ready"


def test_a_message_reaches_its_room_and_only_its_room(client):
    with (
        client.websocket_connect("/ws/chat/lobby") as alice,
        client.websocket_connect("/ws/chat/lobby") as bob,
        client.websocket_connect("/ws/chat/kitchen") as carol,
    ):
        join(alice, "alice"), join(bob, "bob"), join(carol, "carol")
        assert alice.receive_json() == {"type": "joined", "user": "bob"}
        alice.send_json({"type": "say", "text": "hi lobby"})
        assert bob.receive_json() == {"type": "message", "from": "alice", "text": "hi lobby"}
QUIET"""

SOLUTION = HEADER + _ROOM_TEST.replace("QUIET", _QUIET_CHECK) + _AUTH_TEST

_WAITS_FOREVER = (
    HEADER
    + _ROOM_TEST.replace(
        "QUIET",
        "        with pytest.raises(Exception):\n"
        '            carol.receive_json()  # "carol gets nothing": waits for a message that never comes\n',
    )
    + _AUTH_TEST
)
_NO_ROOM_CHECK = (
    HEADER
    + _ROOM_TEST.replace('        client.websocket_connect("/ws/chat/kitchen") as carol,\n', "")
    .replace(', join(carol, "carol")', "")
    .replace("QUIET", "")
    + _AUTH_TEST
)
_NO_AUTH_TEST = HEADER + _ROOM_TEST.replace("QUIET", _QUIET_CHECK)
_WRONG_PROTOCOL = SOLUTION.replace('{"type": "joined", "user": "bob"}', '{"type": "join", "user": "bob"}')


def _mutants() -> dict[str, str]:
    """Broken chats the learner's tests must catch: what is broken -> module source."""
    good = reference_module("04")
    one_room = good.replace("self.rooms.get(room, {})", "self.rooms.get('all', {})").replace(
        "self.rooms.setdefault(room, {})", "self.rooms.setdefault('all', {})"
    )
    any_token = good.replace(
        'claims = verify_token(first.get("token")) if first.get("type") == "auth" else None',
        'claims = (str(first.get("token")).split("|")[0], time.time() + 60)',
    )
    assert one_room != good and any_token != good, "a mutant no longer changes the reference chat"
    return {
        "one where messages leak into other rooms": one_room,
        "one that lets a forged token in": any_token,
    }


async def _pytest(directory: Path, chat: str, tests: str) -> tuple[str, str]:
    """Run pytest on ``tests`` against ``chat``: ("passed"|"failed"|"timeout"|"none", output tail)."""
    (directory / "chat_app.py").write_text(chat, encoding="utf-8")
    (directory / "test_mine.py").write_text(tests, encoding="utf-8")
    # No plugin autoload: the learner's venv may hold many (nbval, hypothesis...), each slowing start-up.
    env = {
        **os.environ,
        "PYTHONPATH": python_path(directory),
        "AUTH_DEADLINE": "0.5",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_timeout", "-W", "ignore"),
        *(f"--timeout={PER_TEST}", "--rootdir", str(directory), "test_mine.py"),
        cwd=directory,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        return "timeout", ""
    finally:  # timed out, or the check itself was cancelled: the child must not outlive it
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    text = out.decode("utf-8", "replace")
    tail = "\n".join(text.strip().splitlines()[-12:])
    if process.returncode != 0 and "+++++ Timeout" in text:
        return "timeout", tail
    if process.returncode == 5:
        return "none", tail
    return ("passed" if process.returncode == 0 else "failed"), tail


class BuildTests(BuildExercise):
    """q: a pytest module that passes on the chat, fails on broken chats, and never hangs."""

    chapter = "07"
    saves = False
    name = "Build it: a pytest module with a fixture that catches broken chats and never hangs"
    reads = ("client",)
    placeholder = runnable_placeholder("07", PLACEHOLDER)
    hints = (
        "The fixture is `with TestClient(app) as client: yield client`. In a test, "
        "`with client.websocket_connect('/ws/chat/lobby') as ws:` opens a socket; send the auth frame "
        "first (`make_token('alice', 60)`), then read `ready`.",
        "Test the room with two rooms: alice and bob in lobby, carol in kitchen. To show carol got nothing, "
        "do not call `carol.receive_json()` and wait: nothing would ever come and TestClient waits forever. "
        "Let carol say something and check that it is the next thing she receives.",
        "For auth: send a forged token and `with pytest.raises(WebSocketDisconnect) as closed: "
        "ws.receive_json()`, then `assert closed.value.code == 4001`.",
    )
    solution_code = SOLUTION
    wrong_answers = (
        WrongAnswer("a test that waits forever", _WAITS_FOREVER, "did not finish"),
        WrongAnswer("only one room in the test", _NO_ROOM_CHECK, "leak into other rooms"),
        WrongAnswer("no auth test", _NO_AUTH_TEST, "lets a forged token in"),
        WrongAnswer("a test of the wrong protocol", _WRONG_PROTOCOL, "fail against a correct chat"),
    )
    secrets = ('"marker"',)
    correct_message = (
        "Your tests pass against the chapter 04 chat and finish in time; they fail against a chat where "
        "messages leak into other rooms and against one that lets a forged token in. Saved in "
        "`mychat/test_chat.py`."
    )

    @classmethod
    def check_source(cls, source: str) -> Any:
        ensure_chat_app()
        return super().check_source(source)

    async def _check(self, *answers: Any) -> None:
        (client,) = answers
        if _is_placeholder(getattr(client, "__wrapped__", client)):
            raise NotAttempted(
                "`client` is still the placeholder: write the fixture and the tests, then check."
            )
        tests = cell_source(client)
        if tests is None:
            raise Incorrect(
                "The checker cannot find the cell that defines the `client` fixture: run that cell."
            )
        mutants = _mutants()
        with tempfile.TemporaryDirectory(prefix="wslab-tests-") as tmp:
            dirs = [Path(tmp) / str(i) for i in range(len(mutants) + 1)]
            for directory in dirs:
                directory.mkdir()
            # The three runs are independent child processes: run them side by side, then judge in order.
            runs = await asyncio.gather(
                _pytest(dirs[0], reference_module("04"), tests),
                *(_pytest(d, broken, tests) for d, broken in zip(dirs[1:], mutants.values(), strict=True)),
            )
        (outcome, tail), *broken_runs = runs
        if outcome == "timeout":
            raise Incorrect(
                f"Your tests did not finish within {PER_TEST} s per test against a correct chat: a "
                "`receive_json()` with nothing to receive waits forever in TestClient. To show that "
                "someone got nothing, make them receive something you know comes next."
            )
        if outcome == "none":
            raise Incorrect("pytest collected no tests: name your test functions `test_...`.")
        if outcome == "failed":
            raise Incorrect(
                "Your tests fail against a correct chat (the chapter 04 reference). pytest said:\n"
                f"```\n{tail}\n```"
            )
        for what, (broken_outcome, _) in zip(mutants, broken_runs, strict=True):
            if broken_outcome == "passed":
                raise Incorrect(
                    f"Your tests pass against a broken chat, {what}: they would not catch that bug. "
                    "Add a test that fails on it."
                )
        path = build_dir() / "test_chat.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tests, encoding="utf-8")

    async def _run(self, module: str) -> None:  # pragma: no cover - _check is overridden
        raise NotImplementedError
