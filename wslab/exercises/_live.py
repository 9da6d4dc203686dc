"""What the failure notebooks' checkers share: run the learner's code inside a real server, safely.

A failure checker serves a small app that calls the learner's function, drives it with named clients
through the notebook's own scenario, and says which scenario failed and what each client saw. Three
things make that safe in a workshop:

* **Learner code runs inside the server**, where an exception would only reach uvicorn's log. So every
  call goes through :class:`Guarded`, which remembers the first exception and lets the checker report
  it as "`fn(...)` raised ...", the same sentence :meth:`Exercise.call` uses.
* **Every wait is bounded** (:func:`until`, :func:`scenario`): a handler that never returns fails its
  scenario; it never hangs the notebook.
* **Everything is owned by a Lab of the checker's own** (``async with Lab()``), so servers, clients and
  proxies stop when the check ends, pass or fail; tasks the learner's code spawned and forgot are
  cancelled by :func:`cancel_leftovers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from starlette.websockets import WebSocketDisconnect

from wslab.exercises._core import Exercise, Incorrect, NotAttempted

__all__ = ["Guarded", "cancel_leftovers", "scenario", "tasks_running", "until"]


class Guarded:
    """A learner function as a server calls it: exceptions are remembered for the checker, then re-raised.

    ``shown`` is how messages write the call (``"joined(room, websocket)"``). ``NotImplementedError``
    means "not attempted", as everywhere in the exercises.
    """

    def __init__(
        self,
        exercise: Exercise,
        fn: Callable[..., Any],
        shown: str,
        expected: tuple[type[BaseException], ...] = (),
    ) -> None:
        exercise.describe(fn)  # not callable: Incorrect at once, before any server starts
        self.fn = fn
        self.shown = shown
        self.expected = expected  # exceptions the exercise asks the learner to raise: the contract, no bug
        self.error: BaseException | None = None
        self.problem: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.fn(*args, **kwargs)
        except Exception as exc:
            self.remember(exc)
            raise
        return self._watch(result) if inspect.isawaitable(result) else result

    async def _watch(self, awaitable: Awaitable[Any]) -> Any:
        """An ``async def`` answer raises when awaited, not when called: remember that, too."""
        try:
            return await awaitable
        except Exception as exc:
            self.remember(exc)
            raise

    def remember(self, exc: BaseException) -> None:
        """Keep the first exception the learner's code raised (the one that explains the rest).

        A ``WebSocketDisconnect`` is not one: it is how Starlette tells a handler its peer has gone, and
        letting it end the handler is ordinary (Starlette ends the connection quietly).
        """
        if self.error is None and not isinstance(exc, (WebSocketDisconnect, *self.expected)):
            self.error = exc

    def fail(self, problem: str) -> None:
        """Remember a mistake the server noticed in what the learner's code returned (first one wins)."""
        if self.problem is None and self.error is None:
            self.problem = problem

    def raise_if_failed(self) -> None:
        """Turn a remembered exception (or problem) into the learner-facing outcome."""
        if self.problem is not None:
            raise Incorrect(self.problem)
        if isinstance(self.error, NotImplementedError):
            raise NotAttempted(
                f"`{self.shown.split('(')[0]}` is still the placeholder: replace the `...` with your code, "
                "run the cell, then check again."
            )
        if self.error is not None:
            raise Incorrect(f"`{self.shown}` raised {type(self.error).__name__}: {self.error}")


async def until(check: Callable[[], bool], timeout: float) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; returns the last value, never raises."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@contextlib.asynccontextmanager
async def scenario(name: str, timeout: float, guarded: Iterable[Guarded] = ()) -> AsyncIterator[None]:
    """Run one scenario under a hard ``timeout``; a hang or a learner exception becomes a reason.

    A learner exception is reported first (it usually explains a hang or a wrong result), then the
    scenario's own ``Incorrect``; a timeout says which scenario never finished.
    """
    guards = list(guarded)
    bound = asyncio.timeout(timeout)
    try:
        async with bound:
            yield
    except Exception as exc:
        for guard in guards:
            guard.raise_if_failed()
        if isinstance(exc, Incorrect):
            raise Incorrect(f"Scenario “{name}”: {exc}") from None
        if isinstance(exc, TimeoutError) and bound.expired():
            raise Incorrect(
                f"Scenario “{name}” did not finish within {timeout:g} s: something waits for ever."
            ) from None
        if isinstance(exc, NotAttempted):
            raise
        # A client's view of a server that broke (a closed connection, a timeout of its own).
        raise Incorrect(f"Scenario “{name}”: {type(exc).__name__}: {exc}") from None
    for guard in guards:
        guard.raise_if_failed()


def tasks_running(coroutine_name: str) -> list[asyncio.Task[Any]]:
    """Tasks of this loop still running a coroutine function named ``coroutine_name``."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and getattr(task.get_coro(), "__name__", "") == coroutine_name
    ]


async def cancel_leftovers(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks the learner's code started and forgot, and wait for them: the check leaves nothing."""
    tasks = list(tasks)
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
    for task in tasks:  # retrieve what they raised, so asyncio prints no "never retrieved" warning
        if task.done() and not task.cancelled():
            task.exception()
