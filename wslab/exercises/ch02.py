"""Chapter 02, chat rooms: a broadcast that one dead peer cannot break.

The learner writes the broadcast the FastAPI docs should have shown: send to every connection, let no
failure stop the others, and hand the dead connections back instead of removing them (removal is the
owning handler's job, in ``finally``). The checker runs it against fake sockets that fail the way
Starlette 1.10 on uvicorn's ``websockets-sansio`` really fails (``tests/pitfalls/test_pitfalls_f01_f03.py``
pins those facts): ``WebSocketDisconnect(1006)`` for a peer whose TCP connection is gone,
``WebSocketDisconnected`` (a ``RuntimeError``) once the app has closed it, ``OSError`` from lower down.
Two more scenarios make "catch those, and only those" a tested claim: the broadcast is cancelled while a
send stalls (a ``CancelledError`` must end it, so ``except BaseException`` fails), and a send fails with
a ``TypeError`` (a bug must reach the caller, so ``except Exception`` fails).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article, maybe_await


class FakeSocket:
    """Stands in for a server-side WebSocket: ``send_text`` records, or raises ``failure``.

    A socket made with ``stall=True`` never finishes a send (a peer whose TCP window is full): the
    checker cancels the broadcast while it waits there, as a shutdown or a send timeout would.
    """

    def __init__(
        self, name: str, failure: Callable[[], BaseException] | None = None, stall: bool = False
    ) -> None:
        self.name = name
        self.failure = failure
        self.stall = stall
        self.stalled = asyncio.Event()
        self.received: list[str] = []

    async def send_text(self, text: str) -> None:
        await asyncio.sleep(0)  # a real send may yield to the loop, too
        if self.stall:
            self.stalled.set()
            await asyncio.Event().wait()  # until cancelled
        if self.failure is not None:
            raise self.failure()
        self.received.append(text)

    def __repr__(self) -> str:
        return self.name


def _gone() -> BaseException:
    return WebSocketDisconnect(1006)


def _closed_by_app() -> BaseException:
    return WebSocketDisconnected('Cannot call "send" once a close message has been sent.')


def _reset() -> BaseException:
    return ConnectionResetError(104, "Connection reset by peer")


def _bug() -> BaseException:
    return TypeError("Object of type datetime is not JSON serializable")


_CASES: tuple[tuple[str, dict[str, Callable[[], BaseException]]], ...] = (
    ("everyone is healthy", {}),
    ("the app already closed bob's socket", {"bob": _closed_by_app}),
    ("bob's TCP connection is gone", {"bob": _gone}),
    ("alice's TCP connection is gone", {"alice": _gone}),
    ("bob is gone and carol's connection was reset", {"bob": _gone, "carol": _reset}),
)
"""(what happened, who fails and how); alice, bob, carol and dave are in the room, in that order."""

_WHY = {
    WebSocketDisconnect: (
        "`WebSocketDisconnect` (code 1006) escaped: that is what Starlette raises when you send to a peer "
        "whose connection is gone. It is not a `RuntimeError`."
    ),
    WebSocketDisconnected: (
        "`WebSocketDisconnected` escaped: Starlette raises it (a `RuntimeError`) when you send on a socket "
        "the app already closed."
    ),
    ConnectionResetError: "`ConnectionResetError` (an `OSError`) escaped: the transport can fail, too.",
}


class SafeBroadcast(Exercise):
    """q1: the broadcast that survives dead peers."""

    name = "Broadcast past dead peers"
    reads = ("safe_broadcast",)
    placeholder = """
async def safe_broadcast(connections: list, message: str) -> list:
    ...  # your code here
"""
    hints = (
        "Send to each connection in turn, but put each send in its own `try`, so that one failure cannot "
        "stop the loop. Collect the connections that failed and return them.",
        "Three exception types mean 'this peer is gone', depending on who noticed first: "
        "`WebSocketDisconnect` (Starlette, peer gone), `RuntimeError` (Starlette's `WebSocketDisconnected`, "
        "the app had closed it) and `OSError` (the transport). Catch all three, and only those.",
        "Do not remove anything from `connections`: you are iterating over it, and removal belongs to the "
        "handler that owns the connection (in its `finally`). Start with `failed = []`, and in the "
        "`except` clause remember the connection; `return failed` after the loop.",
    )
    solution_code = """
from starlette.websockets import WebSocketDisconnect


async def safe_broadcast(connections: list, message: str) -> list:
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            failed.append(connection)
    return failed
"""
    wrong_answers = (
        WrongAnswer(
            "no error handling at all",
            """
async def safe_broadcast(connections, message):
    for connection in connections:
        await connection.send_text(message)
    return []
""",
            "`WebSocketDisconnected` escaped",
        ),
        WrongAnswer(
            "the usual fix: catch RuntimeError only",
            """
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except RuntimeError:
            failed.append(connection)
    return failed
""",
            "`WebSocketDisconnect` (code 1006) escaped",
        ),
        WrongAnswer(
            "one try around the whole loop",
            """
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    try:
        for connection in connections:
            await connection.send_text(message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return [connection]
    return []
""",
            "never received the message",
        ),
        WrongAnswer(
            "removes the dead peer while iterating",
            """
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            connections.remove(connection)
            failed.append(connection)
    return failed
""",
            "changed the list",
        ),
        WrongAnswer(
            "returns the healthy connections",
            """
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    ok = []
    for connection in connections:
        try:
            await connection.send_text(message)
            ok.append(connection)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
    return ok
""",
            "should return the connections whose send failed",
        ),
        WrongAnswer(
            "catches every Exception",
            """
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except Exception:
            failed.append(connection)
    return failed
""",
            "a bug in the code, not a dead peer",
        ),
        WrongAnswer(
            "catches BaseException, swallowing cancellation",
            """
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except BaseException:
            failed.append(connection)
    return failed
""",
            "swallowed the `CancelledError`",
        ),
        WrongAnswer(
            "a bare except",
            """
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except:
            failed.append(connection)
    return failed
""",
            "swallowed the `CancelledError`",
        ),
        WrongAnswer(
            "adds CancelledError to the peer-gone list",
            """
import asyncio
from starlette.websockets import WebSocketDisconnect
async def safe_broadcast(connections, message):
    failed = []
    for connection in connections:
        try:
            await connection.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError, asyncio.CancelledError):
            failed.append(connection)
    return failed
""",
            "swallowed the `CancelledError`",
        ),
        WrongAnswer(
            "sends concurrently and keeps every exception, bugs included",
            """
import asyncio
async def safe_broadcast(connections, message):
    results = await asyncio.gather(*(c.send_text(message) for c in connections), return_exceptions=True)
    return [c for c, r in zip(connections, results) if isinstance(r, BaseException)]
""",
            "a bug in the code, not a dead peer",
        ),
    )
    secrets = ("failed.append(connection)",)
    correct_message = (
        "Every healthy peer got the message, and the dead ones came back to the caller, in order. "
        "Only 'peer gone' errors are caught: a cancelled broadcast stops, and a bug (a `TypeError`) "
        "still surfaces. Removing the dead stays the owning handler's job."
    )

    async def _check(self, safe_broadcast: Callable[..., Any]) -> None:
        await self._gone_cases(safe_broadcast)
        await self._cancelled(safe_broadcast)
        await self._bug_surfaces(safe_broadcast)

    async def _gone_cases(self, safe_broadcast: Callable[..., Any]) -> None:
        for what, failures in _CASES:
            sockets = [FakeSocket(name, failures.get(name)) for name in ("alice", "bob", "carol", "dave")]
            given = list(sockets)
            message = f"hello ({what})"
            try:
                got = await self.call_async(safe_broadcast, given, message)
            except Incorrect as exc:
                why = _WHY.get(type(exc.__cause__))
                if why is None:
                    raise
                raise Incorrect(f"When {what}: {why}") from None
            self._judge(what, sockets, given, message, got)

    async def _cancelled(self, safe_broadcast: Callable[..., Any]) -> None:
        """Cancel the broadcast while bob's send stalls: the cancellation must end it, not be swallowed."""
        sockets = [
            FakeSocket("alice"),
            FakeSocket("bob", stall=True),
            FakeSocket("carol"),
            FakeSocket("dave"),
        ]
        self.describe(safe_broadcast)

        async def run() -> Any:
            return await maybe_await(safe_broadcast(list(sockets), "hello (cancelled)"))

        task = asyncio.ensure_future(run())
        stalled = asyncio.ensure_future(sockets[1].stalled.wait())
        await asyncio.wait({task, stalled}, timeout=self.call_timeout, return_when=asyncio.FIRST_COMPLETED)
        stalled.cancel()
        if task.done():  # it never reached bob's send: an earlier scenario's message says why
            with contextlib.suppress(BaseException):
                task.result()
            raise Incorrect("`safe_broadcast` returned before it sent to bob, whose send never finishes.")
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.call_timeout)
        if not done:
            raise Incorrect(
                "`safe_broadcast` kept running after its task was cancelled (a server shutting down "
                "cancels it): it must stop at once."
            )
        if not task.cancelled():
            try:
                got = task.result()
            except Exception as exc:
                raise Incorrect(
                    f"Cancelled while sending to bob, `safe_broadcast` raised {type(exc).__name__}; "
                    "let `CancelledError` propagate."
                ) from None
            raise Incorrect(
                f"Cancelled while sending to bob, `safe_broadcast` swallowed the `CancelledError` and "
                f"returned {got!r}: it treated a shutdown as a dead peer and went on. `CancelledError` "
                "is a `BaseException`, not an `Exception`: catch only the 'peer gone' errors."
            )

    async def _bug_surfaces(self, safe_broadcast: Callable[..., Any]) -> None:
        """A send that fails with a bug (a TypeError), not a dead peer: the error must reach the caller."""
        sockets = [FakeSocket("alice"), FakeSocket("bob", _bug), FakeSocket("carol")]
        try:
            got = await self.call_async(safe_broadcast, list(sockets), "hello (a bug)")
        except Incorrect as exc:
            if isinstance(exc.__cause__, TypeError):
                return
            raise
        raise Incorrect(
            f"When sending to bob failed with a `TypeError` (a bug in the code, not a dead peer), "
            f"`safe_broadcast` caught it and returned {got!r}: bob would be dropped as dead and the bug "
            "never seen. Catch the three 'peer gone' exceptions, and only those."
        )

    @staticmethod
    def _judge(what: str, sockets: list[FakeSocket], given: list[Any], message: str, got: Any) -> None:
        if given != sockets:
            raise Incorrect(
                f"When {what}: `safe_broadcast` changed the list it was given (now {given}). Removing "
                "while iterating skips the next peer, and removal is the owning handler's job."
            )
        missed = [s.name for s in sockets if s.failure is None and s.received != [message]]
        if missed:
            raise Incorrect(
                f"When {what}: {', '.join(missed)} never received the message, although healthy. "
                "One dead peer must not stop the others."
            )
        if got is None:
            raise Incorrect(f"When {what}: `safe_broadcast` returned None: did you forget `return`?")
        if not isinstance(got, list):
            raise Incorrect(
                f"When {what}: `safe_broadcast` returned {article(type(got).__name__)}; return a list."
            )
        dead = [s for s in sockets if s.failure is not None]
        if got != dead:
            raise Incorrect(
                f"When {what}: `safe_broadcast` returned {got}; it should return the connections whose send "
                f"failed, in the order they appear ({len(dead)} here)."
            )


from wslab.exercises.build_ch02 import BuildRooms  # noqa: E402  (the build track: served for real)

CHAPTER = Chapter("02", "02_chat_rooms", (SafeBroadcast, BuildRooms))
