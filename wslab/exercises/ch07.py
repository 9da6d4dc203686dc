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

SILENT_TIMEOUTS = (0.05, 0.5)
"""The ``timeout`` values the checker passes on the silent server. Two, ten times apart, so a helper that
ignores its argument (a fixed deadline) or scales it (milliseconds, a doubled margin) misses one of them:
no constant fits both windows below, and no multiple of ``timeout`` beyond ±60 % fits the long one."""
SLACK = 0.3
"""Seconds a helper may take beyond its ``timeout`` before the checker calls it unbounded: room for a
busy event loop (a laptop in a workshop), far below any scaling mistake."""
EARLY = 0.9
"""A helper that gives up before this share of its ``timeout`` is not waiting as long as it was asked."""


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
        WrongAnswer(
            "a fixed deadline, ignoring the argument",
            """
import asyncio
async def recv_with_timeout(ws, timeout):
    return await asyncio.wait_for(ws.recv(), 0.2)
""",
            "before its 0.5 s were up",
        ),
        WrongAnswer(
            "a long fixed deadline, ignoring the argument",
            """
import asyncio
async def recv_with_timeout(ws, timeout):
    async with asyncio.timeout(1):
        return await ws.recv()
""",
            "not bounded by the `timeout` it is given",
        ),
        WrongAnswer(
            "a doubled margin",
            """
import asyncio
async def recv_with_timeout(ws, timeout):
    return await asyncio.wait_for(ws.recv(), 2 * timeout)
""",
            "still waiting after 0.8 s",
        ),
        WrongAnswer(
            "half the timeout",
            """
import asyncio
async def recv_with_timeout(ws, timeout):
    return await asyncio.wait_for(ws.recv(), timeout / 2)
""",
            "before its",
        ),
        WrongAnswer(
            "asyncio.wait, which returns instead of raising",
            """
import asyncio
async def recv_with_timeout(ws, timeout):
    done, pending = await asyncio.wait({asyncio.ensure_future(ws.recv())}, timeout=timeout)
    for task in pending:
        task.cancel()
    return done.pop().result() if done else None
""",
            "returned None",
        ),
    )
    secrets = ("return await ws.recv()\n", "wait_for(ws.recv(), timeout)")
    correct_message = (
        "`recv_with_timeout` returns what the echo server sends, and on the silent server raises "
        f"`TimeoutError` when the `timeout` it is given is up "
        f"({' s and '.join(map(str, SILENT_TIMEOUTS))} s), not before and not much later."
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
            for timeout in SILENT_TIMEOUTS:
                async with connect(silent.ws_url("/ws/chat/lobby"), ping_interval=None, proxy=None) as ws:
                    await self._silent(recv_with_timeout, ws, timeout)

    async def _silent(self, recv_with_timeout: Callable[..., Any], ws: Any, timeout: float) -> None:
        call = f"recv_with_timeout(ws, {timeout:g})"
        started = time.monotonic()
        give_up_after = timeout + SLACK
        bound = asyncio.timeout(give_up_after)
        try:
            async with bound:
                got = await maybe_await(recv_with_timeout(ws, timeout))
        except TimeoutError:
            if bound.expired():
                raise Incorrect(
                    f"`{call}` on a server that never answers was still waiting after {give_up_after:g} s: "
                    "the wait is not bounded by the `timeout` it is given (in seconds)."
                ) from None
            waited = time.monotonic() - started
            if waited < EARLY * timeout:
                raise Incorrect(
                    f"`{call}` gave up after {waited:.2g} s, before its {timeout:g} s were up: use the "
                    "`timeout` it is given, in seconds, as it is."
                ) from None
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
