"""Chapter 07, testing WebSockets: a receive helper that can never hang a test suite.

The checker runs the learner's ``recv_with_timeout(ws, timeout)`` against two real servers on the
kernel's loop: one that answers (the demo echo) and one that stays silent (the chat app, which says
nothing until a client authenticates). A correct helper returns the echo and, on the silent server,
raises ``TimeoutError`` close to ``timeout``. The checker bounds every wait itself, so a helper that
hangs fails the check instead of the notebook.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect

from wslab.exercises._core import Chapter, Exercise, Incorrect, NotAttempted, WrongAnswer, maybe_await

SILENT_TIMEOUT = 0.1
"""The ``timeout`` the checker passes on the silent server."""
GIVE_UP_AFTER = 1.0
"""How long the checker lets the helper wait there before calling it unbounded."""


class RecvWithTimeout(Exercise):
    """q1: bound every read in a test."""

    name = "Receive with a timeout"
    reads = ("recv_with_timeout",)
    placeholder = """
async def recv_with_timeout(ws, timeout: float):
    ...  # your code here
"""
    hints = (
        "`await ws.recv()` waits for as long as it takes, which is forever when the server has nothing to "
        "say. Wrap the await in something that cancels it after `timeout` seconds.",
        "asyncio has two ways to put a deadline on an await: a function that takes the awaitable and the "
        "seconds, and an `async with` context manager. Either raises `TimeoutError` when time is up.",
        "Let the `TimeoutError` propagate: a test that gets `None` back goes on with the wrong value, a "
        "test that gets the exception fails right there, saying why.",
    )
    solution_code = """
import asyncio


async def recv_with_timeout(ws, timeout: float):
    async with asyncio.timeout(timeout):
        return await ws.recv()
"""
    wrong_answers = (
        WrongAnswer(
            "no timeout at all",
            """
async def recv_with_timeout(ws, timeout):
    return await ws.recv()
""",
            "still waiting",
        ),
        WrongAnswer(
            "returns None instead of raising",
            """
import asyncio
async def recv_with_timeout(ws, timeout):
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        return None
""",
            "returned None",
        ),
        WrongAnswer(
            "milliseconds instead of seconds",
            """
import asyncio
async def recv_with_timeout(ws, timeout):
    return await asyncio.wait_for(ws.recv(), timeout * 1000)
""",
            "still waiting",
        ),
    )
    secrets = ("return await ws.recv()\n", "wait_for(ws.recv(), timeout)")
    correct_message = (
        f"`recv_with_timeout` returns what the echo server sends, and gives up on the silent server with "
        f"`TimeoutError` within {GIVE_UP_AFTER:g} s."
    )
    call_timeout = 3.0

    async def _check(self, recv_with_timeout: Callable[..., Any]) -> None:
        from wslab.apps import demo_app
        from wslab.chat import ChatSettings, create_app
        from wslab.lab import Lab

        self.describe(recv_with_timeout)
        async with Lab() as lab:  # a lab of its own: the notebook's lab is left alone
            echo = await lab.serve(demo_app(), name="echo")
            silent = await lab.serve(create_app(ChatSettings(auth_timeout=30)), name="silent")
            async with connect(echo.ws_url("/ws/echo"), ping_interval=None, proxy=None) as ws:
                await ws.send("are you there?")
                got = await self.call_async(recv_with_timeout, ws, 1.0)
                if inspect_coroutine(got):
                    raise Incorrect(
                        "`recv_with_timeout(ws, 1.0)` returned a coroutine: define it with `async def` and "
                        "`await` the receive inside it."
                    )
                if got != "are you there?":
                    raise Incorrect(
                        f"`recv_with_timeout(ws, 1.0)` returned {got!r} on a server that echoes; it should "
                        "return the message received."
                    )
            async with connect(silent.ws_url("/ws/chat/lobby"), ping_interval=None, proxy=None) as ws:
                await self._silent(recv_with_timeout, ws)

    async def _silent(self, recv_with_timeout: Callable[..., Any], ws: Any) -> None:
        call = f"recv_with_timeout(ws, {SILENT_TIMEOUT:g})"
        started = time.monotonic()
        bound = asyncio.timeout(GIVE_UP_AFTER)
        try:
            async with bound:
                got = await maybe_await(recv_with_timeout(ws, SILENT_TIMEOUT))
        except TimeoutError:
            if bound.expired():
                raise Incorrect(
                    f"`{call}` on a server that never answers was still waiting after {GIVE_UP_AFTER:g} s: "
                    "the wait is not bounded by `timeout` (in seconds)."
                ) from None
            if time.monotonic() - started < SILENT_TIMEOUT / 2:
                raise Incorrect(f"`{call}` gave up long before {SILENT_TIMEOUT:g} s.") from None
            return
        except NotImplementedError as exc:
            raise NotAttempted(self._not_attempted_message("recv_with_timeout")) from exc
        except Exception as exc:
            raise Incorrect(f"`{call}` raised {type(exc).__name__}: {exc}; expected TimeoutError.") from exc
        raise Incorrect(
            f"`{call}` returned {got!r} on a server that never answers; raise TimeoutError instead, so the "
            "test fails right there."
        )


def inspect_coroutine(value: object) -> bool:
    """True (and the coroutine closed, to avoid a warning) if ``value`` is an un-awaited coroutine."""
    if asyncio.iscoroutine(value):
        with contextlib.suppress(Exception):
            value.close()
        return True
    return False


from wslab.exercises.build_ch07 import BuildTests  # noqa: E402  (the build track: pytest, for real)

CHAPTER = Chapter("07", "07_testing_websockets", (RecvWithTimeout, BuildTests))
